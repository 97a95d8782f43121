"""Fixed examples that kill the mutants of the checksum normalisation in
buttress.migrations.files that the existing tests let live (scripts/mutation.py;
docs/testing.md, "Mutation testing")."""

from __future__ import annotations

from buttress.migrations.files import checksum, normalise_text


def test_normalising_strips_only_line_ends_after_the_last_line() -> None:
    # Trailing blank lines go, and nothing else: a last line ending in "X" keeps it
    # (a strip of any other character set would eat it and hide an edit).
    assert normalise_text("SELECT 1 AS X\n\n\n") == "SELECT 1 AS X\n"
    assert normalise_text("SELECT 1 AS X") == "SELECT 1 AS X\n"


def test_the_checksum_of_a_known_text_never_changes() -> None:
    # sha256-normalised-v1 is stored next to every applied migration: the digest of
    # a given text must be the same in every buttress version.
    text = "CREATE TABLE x (a int);\r\n-- X  \r\nSELECT 'é';\r\n\r\n"
    assert checksum(text) == "a2a9940b50f2cb12006c2fb8f2bed9b81feccd27fe6e334200347e26e447b5b7"
