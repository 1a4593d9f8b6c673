"""Helpers shared by the test packages (imported as ``utils``: the root ``tests/conftest.py``
puts ``tests/`` on ``sys.path``; ``tests`` itself is not a package because an installed
dependency ships a top-level ``tests`` package)."""
