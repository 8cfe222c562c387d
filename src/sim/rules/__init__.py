"""Pure array rules of the model (no Mesa, no I/O): combat, control, displacement,
recruitment and insurgency.  Each takes and returns numpy arrays so it can be tested on
tiny hand-built grids with exact expected numbers."""
