"""Hardware configuration (typed, YAML presets) and component tables."""

from crossnas.hardware.config import (
    ADCConfig,
    CrossbarConfig,
    DACConfig,
    DeviceConfig,
    HardwareConfig,
    QuantConfig,
    SystemConfig,
    list_presets,
    load_hardware,
    parse_set_args,
)

__all__ = [
    "ADCConfig", "CrossbarConfig", "DACConfig", "DeviceConfig", "HardwareConfig", "QuantConfig",
    "SystemConfig", "list_presets", "load_hardware", "parse_set_args",
]
