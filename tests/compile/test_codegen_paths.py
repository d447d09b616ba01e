"""The generated code in finn/codegen/ names only files that exist once the compile is done."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from fixtures_build import compiled_build, mvau_model  # noqa: F401  (fixture)
from qonnx.custom_op.registry import getCustomOp

from a2qflow.compile.passes import RelocateCodegenDirs
from a2qflow.compile.passes.relocate_codegen_dirs import text_contents
from a2qflow.finn_env import finn_session

# an absolute path of at least two components, not the tail of a longer word or path
ABSOLUTE_PATH = re.compile(r"(?<![\w./])/(?:[\w.+-]+/)+[\w.+-]+")


def text_files(root: Path) -> dict[Path, str]:
    files = {p: text_contents(p) for p in sorted(root.rglob("*")) if p.is_file()}
    return {p: text for p, text in files.items() if text is not None}


def absolute_paths(root: Path) -> dict[str, Path]:
    """Every absolute path named in the text files under ``root`` -> a file that names it."""
    return {m: path for path, text in text_files(root).items()
            for m in ABSOLUTE_PATH.findall(text) if Path("/" + m.split("/")[1]).exists()}


def finn_dependency_dir(tmp: Path) -> Path:
    """Where FINN's HLS Tcl expects finn-hlslib: FINN's dependency folder, which its wheel does
    not ship (the Vivado path brings it; ``finn deps update``)."""
    from finn.util.settings import get_settings

    with finn_session(tmp):
        return Path(get_settings().finn_deps)


@pytest.mark.slow
def test_compiled_codegen_names_only_files_that_exist(compiled_build, tmp_path):  # noqa: F811
    build = compiled_build("a2q+", 12)
    codegen = build / "finn" / "codegen"
    paths = absolute_paths(codegen)
    wrappers = list(codegen.rglob("*_memstream_wrapper.v"))
    assert wrappers and any(str(codegen) in p for p in paths), "no INIT_FILE path found to check"
    staged = sorted(p for p in paths if ".compile-" in p)
    assert not staged, f"paths into the deleted staging directory: {staged}"
    deps = finn_dependency_dir(tmp_path)
    missing = sorted(f"{p} (in {paths[p].relative_to(build)})" for p in paths
                     if not Path(p).exists() and not Path(p).is_relative_to(deps))
    assert not missing, f"codegen names files that do not exist: {missing}"
    for wrapper in wrappers:
        init = re.search(r'INIT_FILE\s*=\s*"([^"]+)"', wrapper.read_text()).group(1)
        assert Path(init).is_file() and Path(init).parent == wrapper.parent


def test_relocation_rewrites_attributes_and_file_contents(tmp_path):
    old, new = tmp_path / ".compile-abc" / "codegen", tmp_path / "finn" / "codegen"
    node_dir = old / "code_gen_ipgen_MVAU_0"
    node_dir.mkdir(parents=True)
    wrapper = node_dir / "MVAU_0_memstream_wrapper.v"
    wrapper.write_text(f'parameter INIT_FILE = "{node_dir}/memblock.dat",\n'
                       f'// {old}2 is another directory\n')
    binary = node_dir / "input_0.npy"
    np.save(binary, np.arange(4))
    before = binary.read_bytes()
    model = mvau_model(np.ones((2, 4)), None)
    getCustomOp(model.graph.node[0]).set_nodeattr("code_gen_dir_ipgen", str(node_dir))

    model = model.transform(RelocateCodegenDirs(old, new))

    assert getCustomOp(model.graph.node[0]).get_nodeattr("code_gen_dir_ipgen") == \
        str(new / "code_gen_ipgen_MVAU_0")
    assert wrapper.read_text() == (
        f'parameter INIT_FILE = "{new}/code_gen_ipgen_MVAU_0/memblock.dat",\n'
        f'// {old}2 is another directory\n')
    assert binary.read_bytes() == before
