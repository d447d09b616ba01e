"""One error type for everything a user can fix: a message naming the problem and the fix."""


class A2QFlowError(Exception):
    """A problem with the user's input or environment.

    The CLI prints ``problem`` and ``fix`` and exits non-zero; nothing else is caught there,
    so a real bug still shows its traceback.
    """

    def __init__(self, problem: str, fix: str = ""):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}\n  fix: {fix}" if fix else problem)

    def __reduce__(self):
        # keep problem and fix when the error crosses a process boundary (Dask workers)
        return (type(self), (self.problem, self.fix))
