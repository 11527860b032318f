"""The shared kernel: pipeline frames and the error envelope.

The domain packages (``retriever``, ``glossary``) and the gateway (``server``) all depend on it;
it depends on nothing in the project. Keep it small: only types every layer speaks.
"""
