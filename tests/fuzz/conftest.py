"""``atheris_readers.py`` is a libFuzzer driver run as a script (``make fuzz``), not a test module:
it imports ``atheris`` (the optional ``fuzz`` extra) and instruments ``latticesym`` at import, so
pytest's collection (``--doctest-modules``) must not import it."""

collect_ignore = ["atheris_readers.py"]
