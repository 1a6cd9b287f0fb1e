"""Tables, plots and statistics of the report stage."""
