"""Go's tabwriter as kubectl uses it: padding, minimum width, the unpadded
last cell, and column blocks that lines without a cell in the column end."""

from __future__ import annotations

from control.cli.tabwriter import align


def test_columns_are_padded_to_the_widest_cell_plus_padding():
    text = align("NAME\tAGE\nweb-server\t5s\n", minwidth=0, padding=3)
    assert text == "NAME         AGE\nweb-server   5s\n"


def test_narrow_columns_get_the_minimum_width():
    text = align("A\tB\nx\ty\n", minwidth=6, padding=3)
    assert text == "A     B\nx     y\n"


def test_the_cell_after_the_last_tab_is_not_padded():
    text = align("a\tbb\nccc\td\n", minwidth=0, padding=2)
    assert text.splitlines() == ["a    bb", "ccc  d"]


def test_a_line_without_tabs_ends_the_column_block():
    text = align("Name:\tweb\nContainers:\n  c:\n    Image:\tnginx\n    Port:\t80/TCP\n", minwidth=0, padding=2)
    assert text.splitlines() == [
        "Name:  web",
        "Containers:",
        "  c:",
        "    Image:  nginx",
        "    Port:   80/TCP",
    ]


def test_an_empty_first_cell_continues_the_column():
    text = align("Labels:\tapp=web\n\ttier=front\nAnnotations:\t<none>\n", minwidth=0, padding=2)
    assert text.splitlines() == [
        "Labels:       app=web",
        "              tier=front",
        "Annotations:  <none>",
    ]


def test_text_without_a_final_newline_is_kept_as_it_ends():
    assert align("a\tb", minwidth=0, padding=1) == "a b"
