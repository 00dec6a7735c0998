"""unigram.N's one parser (`format.read_unigrams`, vectorised): any "id count" lines it is given
come back exactly, and any line that is not two non-negative integers is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index_tools.errors import IndexFormatError
from index_tools.format import read_unigrams

ROWS = st.lists(st.tuples(st.integers(0, 10**18 - 1), st.integers(0, 10**18 - 1)), max_size=40)
BLANK = st.sampled_from(["", " ", "\t", "  ", " \t"])
EOL = st.sampled_from(["\n", "\r\n", "\n\n", "\n \n"])


@settings(max_examples=200, deadline=None)
@given(rows=ROWS, pads=st.lists(st.tuples(BLANK, st.sampled_from([" ", "\t", "  "]), BLANK, EOL), min_size=40, max_size=40),
       last_eol=st.booleans())
def test_any_well_formed_file_reads_back(tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[int, int]],
                                         pads: list[tuple[str, str, str, str]], last_eol: bool) -> None:
    text = "".join(f"{lead}{i}{mid}{c}{trail}{eol}" for (i, c), (lead, mid, trail, eol) in zip(rows, pads, strict=False))
    if not last_eol and text.endswith("\n"):
        text = text.rstrip("\r\n")
    path = tmp_path_factory.mktemp("u") / "unigram.0"
    path.write_bytes(text.encode("ascii"))
    assert read_unigrams(path).tolist() == [list(r) for r in rows]


@pytest.mark.parametrize("bad", [b"1 2 3\n", b"1\n", b"5 6\n7\n", b"-1 2\n", b"1 x\n", b"1 2.5\n", b"\xff 1\n",
                                 b"1234567890123456789 1\n", b"1,2\n", b"1 2\n3 4 5 6\n"])
def test_malformed_lines_are_refused_by_name(tmp_path: Path, bad: bytes) -> None:
    path = tmp_path / "unigram.3"
    path.write_bytes(b"0 9\n" + bad)
    with pytest.raises(IndexFormatError, match="unigram.3: not 'token count' lines"):
        read_unigrams(path)


def test_empty_and_blank_files_are_empty_tables(tmp_path: Path) -> None:
    for data in (b"", b"\n\n", b" \t\r\n"):
        (tmp_path / "u").write_bytes(data)
        assert read_unigrams(tmp_path / "u").shape == (0, 2)
