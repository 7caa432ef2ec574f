"""Read tables: their schema and the query functions, the only code that reads them."""
