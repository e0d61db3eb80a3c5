"""Small shared helpers: registry, device selection, atomic writes, configs, the one checkpoint format
(``checkpoint``), the safe tensor-file loader (``torch_io``) and runtime settings of the entry points."""
