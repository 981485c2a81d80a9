"""crossnas: joint search of network, quantization and analog PIM hardware."""
