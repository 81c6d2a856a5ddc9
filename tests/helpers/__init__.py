"""Helpers that several test modules share (test modules never import one another).

Fixtures shared by a folder of tests live in that folder's ``conftest.py``; the
ones every folder uses are pytest plugins under ``tests/fixtures``.
"""
