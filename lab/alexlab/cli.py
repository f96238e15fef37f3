"""Placeholder entry point; the Lab issue replaces it."""
import sys


def main(argv=None):
    sys.stderr.write("alexlab: not built yet\n")
    return 2
