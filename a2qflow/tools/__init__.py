"""One small runner per external tool: an argv list in, a log and a parsed result out."""
