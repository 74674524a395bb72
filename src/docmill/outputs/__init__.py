"""Where records go: rotated part files under DIR/records, and consolidated exports."""

from docmill.outputs.export import EXPORT_FORMATS, export_records, export_tables
from docmill.outputs.parts import PartFile, parse_part_name, part_name

__all__ = ["EXPORT_FORMATS", "PartFile", "export_records", "export_tables", "parse_part_name", "part_name"]
