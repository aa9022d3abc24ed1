"""The analytical engine: pure Python + numpy, no Textual."""
