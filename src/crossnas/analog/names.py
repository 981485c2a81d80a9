"""Names of the registered device effects (crossnas.analog.effects); torch-free, for config validation."""

CELL_EFFECTS = ("pcm_noise", "variation", "drift", "stuck_at")  # drawn once per chip, per cell
READ_EFFECTS = ("ir_drop", "read_noise", "adc_offset", "adc_inl")  # at every read of a tile
EFFECTS = CELL_EFFECTS + READ_EFFECTS
