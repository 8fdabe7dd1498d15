"""Small helpers with no project knowledge: atomic writes, lazy package attributes, CPU threads."""
