"""Demos: complete agents assembled from the library, for the CLI, the examples and LangGraph
Studio.  Not part of the library's API; read them as worked examples."""
