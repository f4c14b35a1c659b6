"""resm.fasta: a record's id is one rule, record_id (up to the first whitespace), in every reader."""

from resm.fasta import parse_fasta, record_id


def test_parse_fasta_ids_are_record_id_of_the_header():
    headers = ["a\tdesc  x ", "b", "c  d e", "d\u00a0nbsp", "e\x0bvt rest"]
    text = [line for h in headers for line in (f">{h}", "ACGU")]
    records = list(parse_fasta(text))
    assert [r.id for r in records] == [record_id(h.strip()) for h in headers] == ["a", "b", "c", "d", "e"]
    assert [r.description for r in records] == ["desc  x", "", "d e", "nbsp", "vt rest"]
