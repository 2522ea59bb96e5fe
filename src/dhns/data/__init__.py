"""Benchmark input: read and validate OpenKE-format knowledge graphs, report split hygiene, store them as parquet.

One module per concern:
- graph: `KnowledgeGraph` (ids checked at construction), `DataFormatError`, `SPLITS`, and the name
  cleaning that gives readable text to entities and relations without a label;
- text_file: reading one raw text file as UTF-8 lines, refusing other encodings, NUL bytes and lone-CR
  line endings by name;
- openke: `read_openke_benchmark`, which reads and validates an OpenKE folder (id files, triple files,
  text files) and names the file and line of any defect;
- splits: split hygiene, `split_report`, `drop_leaked_triples` and `hold_out_validation`;
- prepared: the parquet form, `write_prepared` and `load_prepared`.
The public names are re-exported here, so `from dhns.data import X` is the way to import them.
"""

from dhns.data.graph import SPLITS, DataFormatError, KnowledgeGraph, clean_entity_name, clean_relation_name
from dhns.data.openke import (
    ENTITY_ID_FILE,
    ENTITY_TEXT_FILE,
    RELATION_ID_FILE,
    RELATION_TEXT_FILE,
    read_openke_benchmark,
)
from dhns.data.prepared import DATASET_FILE, load_prepared, write_prepared
from dhns.data.splits import drop_leaked_triples, hold_out_validation, split_report

__all__ = [
    "DATASET_FILE", "DataFormatError", "ENTITY_ID_FILE", "ENTITY_TEXT_FILE", "KnowledgeGraph", "RELATION_ID_FILE",
    "RELATION_TEXT_FILE", "SPLITS", "clean_entity_name", "clean_relation_name", "drop_leaked_triples",
    "hold_out_validation", "load_prepared", "read_openke_benchmark", "split_report", "write_prepared",
]
