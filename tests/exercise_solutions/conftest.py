"""Correct student-style solutions of every exercise, loaded by tests/test_exercises.py.

They are data for the tests, not test modules: pytest does not collect them.
"""
collect_ignore_glob = ["*.py"]
