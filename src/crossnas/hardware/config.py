"""Typed hardware configuration: device, crossbar, converters, system. Loaded from YAML presets/overlays.

Every field has a docstring; unknown keys are errors anywhere (pydantic `extra="forbid"`).
A YAML file is an overlay on a preset: `base: mnsim-default` plus the keys it changes.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crossnas.errors import ConfigError, CrossnasError, validated
from crossnas.hardware.adc_law import ADCLaw
from crossnas.yamlio import parse_value, read_yaml_mapping

PRESET_DIR = Path(__file__).parent / "presets"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)


class DeviceConfig(_Strict):
    kind: Literal["rram", "pcm", "mram"] = "rram"
    """Memory technology; `pcm` enables the PCM noise/drift formulas when switched on."""
    bits_per_cell: int = Field(1, ge=1, le=8)
    """Conductance levels per cell = 2**bits_per_cell."""
    # bound: ON states reported for RRAM/PCM/MRAM lie within ~1 kOhm-1 MOhm (pim-components.md: 10 kOhm)
    r_on_ohm: float = Field(10e3, gt=0, le=1e8, allow_inf_nan=False)
    """Low-resistance state (highest conductance)."""
    r_off_ohm: float | None = Field(1e6, gt=0, le=1e12, allow_inf_nan=False)
    """High-resistance state; None means an infinite on/off ratio (g_min = 0)."""
    read_voltage_v: float = Field(0.15, gt=0, le=5.0, allow_inf_nan=False)  # reads stay < 1 V
    """Read voltage applied to a driven row."""
    read_latency_ns: float = Field(3.16, gt=0, le=1e6, allow_inf_nan=False)
    """Time of one array read (one input slice)."""
    cell_area_um2: float = Field(1.44, gt=0, allow_inf_nan=False)
    """Area of one cell (1T1R) at `technology_nm`."""
    technology_nm: int = Field(130, ge=1, le=1000)
    """Process node of the array and periphery."""
    variation: float = Field(0.0, ge=0, le=1.0, allow_inf_nan=False)  # sigma = the signal at 1
    """Relative sigma of per-cell programming variation (0 = off)."""
    variation_model: Literal["gaussian", "lognormal"] = "gaussian"
    """Distribution of programming variation."""
    stuck_off_rate: float = Field(0.0, ge=0, le=1, allow_inf_nan=False)
    """Fraction of cells stuck at the high-resistance state (g_min)."""
    stuck_on_rate: float = Field(0.0, ge=0, le=1, allow_inf_nan=False)
    """Fraction of cells stuck at the low-resistance state (g_max)."""
    pcm_noise: bool = False
    """Apply PCM programming noise (Nandakumar et al. 2019) instead of `variation`."""
    drift_time_s: float | None = Field(None, ge=0, allow_inf_nan=False)
    """PCM drift: time since programming (None = no drift)."""
    ir_drop: bool = False
    """Simulate IR drop on word and bit lines from `crossbar.wire_r_ohm` (first order, docs/analog.md)."""
    read_noise: float = Field(0.0, ge=0, allow_inf_nan=False)
    """Per-read Gaussian noise on each column's analog sum, sigma relative to the sum (0 = off)."""
    read_noise_floor: float = Field(0.0, ge=0, allow_inf_nan=False)
    """Per-read Gaussian noise floor on each column's analog sum, sigma in unit partial sums (0 = off)."""
    effects_off: list[str] = Field(default_factory=list)
    """Device effects switched off by name whatever their settings (ablations), e.g. [ir_drop]."""

    @field_validator("effects_off")
    @classmethod
    def _check_effect_names(cls, v):
        from crossnas.analog.names import EFFECTS

        bad = [n for n in v if n not in EFFECTS]
        if bad:
            raise ValueError(f"unknown effect {bad[0]!r}; registered: {', '.join(EFFECTS)}")
        return v

    @property
    def on_off_ratio(self) -> float:
        return float("inf") if self.r_off_ohm is None else self.r_off_ohm / self.r_on_ohm


class CrossbarConfig(_Strict):
    rows: int = Field(256, ge=1, le=65536)  # arrays reported reach 1024; tests model 11000-row sums
    """Word lines per array."""
    cols: int = Field(256, ge=1, le=65536)
    """Bit lines per array."""
    signed: Literal["differential", "offset"] = "differential"
    """Signed weights: a positive and a negative array (sign not stored), or one array with an offset."""
    differential_subtract: Literal["analog", "digital"] = "analog"
    """Differential pair: subtract currents before the ADC (one conversion per pair) or convert both."""
    row_packing: Literal["im2col", "kernel_aligned"] = "kernel_aligned"
    """im2col: C*k*k rows split every `rows`; kernel_aligned: whole k*k kernels, floor(rows/k^2) channels."""
    slice_placement: Literal["packed", "per_crossbar"] = "per_crossbar"
    """Weight slices side by side in one array's columns (ISAAC) or one array per slice (MNSIM-2.0)."""
    wire_r_ohm: float = Field(0.35, ge=0, allow_inf_nan=False)
    """Wire resistance of one cell segment of a word or bit line (ohm). Read by the cost model (bit-line RC
    read time) and the simulator (IR drop): one physics, one field. Default: 130 nm estimate, see presets."""
    wire_c_f: float = Field(0.24e-15, ge=0, allow_inf_nan=False)
    """Wire capacitance of one cell segment (farad), for the bit-line RC read time."""


class DACConfig(_Strict):
    bits: int = Field(1, ge=1, le=8)
    """Input bits streamed per cycle (bit-serial chunks of this width)."""
    rows_per_dac: int = Field(2, ge=1)
    """Rows sharing one DAC (time-multiplexed); kept when the crossbar size changes."""


class ADCConfig(_Strict):
    bits: int = Field(6, ge=1, le=16)
    """Resolution of every ADC unless `per_layer` overrides it."""
    per_layer: dict[str, int] = Field(default_factory=dict)
    """Per-layer resolution: {module-name glob: bits}, e.g. {"blocks.3.*": 4}; first match wins."""
    cols_per_adc: int = Field(2, ge=1)
    """Columns sharing one ADC (time-multiplexed); kept when the crossbar size changes."""
    sample_rate_hz: float = Field(1e9, gt=0, le=1e11, allow_inf_nan=False)
    """Conversions per second of one ADC at `reference_bits` (other bits: `law`)."""
    power_w: float | None = Field(None, gt=0, allow_inf_nan=False)
    """Power of one ADC at `reference_bits`; None takes energy from `energy_table` at each layer's bits."""
    area_um2: float | None = Field(None, gt=0, allow_inf_nan=False)
    """Area of one ADC at `reference_bits`; None takes it from `energy_table`."""
    reference_bits: int | None = Field(None, ge=1, le=16)
    """Resolution at which power_w, area_um2 and sample_rate_hz hold; None means `bits`."""
    law: ADCLaw = Field(default_factory=ADCLaw)
    """How energy, area and conversion time scale with bits from `reference_bits` (hardware/adc_law.py)."""
    energy_table: Literal["murmann", "isaac", "neurosim", "mnsim"] = "murmann"
    """Which component table gives energy/area per conversion when not set explicitly."""
    range: Literal["full_scale", "calibrated"] = "calibrated"
    """ADC input range: the theoretical maximum partial sum, or calibrated on data (see `range_scope`)."""
    percentile: float = Field(99.99, gt=0, le=100, allow_inf_nan=False)
    """With range=calibrated: the percentile of observed |partial sums| that maps to full scale."""
    range_scope: Literal["layer", "tile"] = "tile"
    """With range=calibrated: one range per layer, or one per (layer, row tile): a short tile gets its own."""
    offset_lsb: float = Field(0.0, ge=0, allow_inf_nan=False)
    """Sigma of each ADC's input offset in LSB, drawn once per chip and ADC (0 = off)."""
    inl_lsb: float = Field(0.0, ge=0, allow_inf_nan=False)
    """Sigma of each ADC's peak integral non-linearity in LSB (parabolic bow), once per chip (0 = off)."""

    @model_validator(mode="after")
    def _check_per_layer(self):
        for k, v in self.per_layer.items():
            if not 1 <= int(v) <= 16:
                raise ValueError(f"per_layer[{k!r}] must be 1..16 bits, got {v}")
        return self


class QuantConfig(_Strict):
    weight_bits: int = Field(9, ge=1, le=16)
    """Default weight bits, sign included, for layers without their own."""
    act_bits: int = Field(9, ge=1, le=16)
    """Default activation bits, sign included for signed inputs."""


class SystemConfig(_Strict):
    crossbars_per_pe: int = Field(4, ge=1)
    """Arrays in one processing element."""
    pes_per_tile: int = Field(4, ge=1)
    """Processing elements in one tile."""
    tiles: int | Literal["auto"] = "auto"
    """Tiles on the chip; auto grows the chip to fit the network (a fixed number that is too small warns)."""
    clock_hz: float = Field(500e6, gt=0, le=1e10, allow_inf_nan=False)  # 10 GHz bound
    """Digital clock (shift-add, activation, pooling, buffers)."""
    buffer_kb: float = Field(64.0, gt=0, allow_inf_nan=False)
    """Input/output buffer per tile."""
    inter_tile_gbps: float = Field(20.0, gt=0, allow_inf_nan=False)
    """Bandwidth between tiles."""
    intra_tile_gbps: float = Field(1024.0, gt=0, allow_inf_nan=False)
    """Bandwidth inside a tile."""
    duplication: Literal["none", "balance"] = "none"
    """`balance` copies early (large-map) layers to balance the pipeline when spare arrays allow."""
    max_duplication: int = Field(8, ge=1)
    """Upper bound on copies of one layer under `balance`."""


class HardwareConfig(_Strict):
    """The full PIM chip: device, crossbar, converters, quantization defaults and system."""

    name: str = "custom"
    """A label for reports."""
    device: DeviceConfig = Field(default_factory=DeviceConfig)
    """Memory cell technology and non-idealities."""
    crossbar: CrossbarConfig = Field(default_factory=CrossbarConfig)
    """Array size, signed-weight mapping and wires."""
    dac: DACConfig = Field(default_factory=DACConfig)
    """Input drivers."""
    adc: ADCConfig = Field(default_factory=ADCConfig)
    """Column converters."""
    quant: QuantConfig = Field(default_factory=QuantConfig)
    """Default bits of layers without their own."""
    system: SystemConfig = Field(default_factory=SystemConfig)
    """Processing elements, tiles, clock, buffers and links."""

    @model_validator(mode="after")
    def _check(self):
        if self.device.bits_per_cell > self.quant.weight_bits:
            raise ValueError(
                f"device.bits_per_cell ({self.device.bits_per_cell}) must not exceed quant.weight_bits "
                f"({self.quant.weight_bits})"
            )
        return self

    # --- overlays ---------------------------------------------------------------------------------
    def with_overrides(self, overrides: dict[str, Any] | None) -> HardwareConfig:
        """A new config with {dotted.key: value} applied, validated as a whole."""
        if not overrides:
            return self
        data = self.model_dump()
        for key, value in overrides.items():
            _set_dotted(data, key, value)
        out = _validate(data, source="override")
        if "name" not in overrides:  # a changed chip is not the preset: `mnsim-default+xbar64+adc8`
            from crossnas.hardware.naming import derived_name

            out.name = derived_name(self.name, self.model_dump(), out.model_dump())
        return out

    def adc_bits_for(self, layer_name: str) -> int:
        """ADC resolution of one layer (per-layer glob override, else global)."""
        from fnmatch import fnmatchcase

        for pattern, bits in self.adc.per_layer.items():
            if fnmatchcase(layer_name, pattern):
                return int(bits)
        return self.adc.bits


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for i, p in enumerate(parts[:-1]):
        if not isinstance(node, dict) or p not in node:
            raise ConfigError(".".join(parts[: i + 1]), "a known hardware config section")
        node = node[p]
    if not isinstance(node, dict) or (parts[-1] not in node):
        raise ConfigError(key, "a known hardware config key")
    old = node[parts[-1]]  # a section given as a mapping updates its keys, never replaces the section
    node[parts[-1]] = _merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value


def _validate(data: dict, source: str) -> HardwareConfig:
    return validated(HardwareConfig, data, source, show_input=True)


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "per_layer":
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _load_yaml(path: Path) -> dict:
    return read_yaml_mapping(path, "a hardware YAML file of config sections")


def _resolve(data: dict, source: str, seen: tuple[str, ...] = ()) -> dict:
    base = data.pop("base", None)
    if base is None:
        return data
    if base in seen:
        raise CrossnasError(f"{source}: base {base!r} forms a cycle")
    if base not in list_presets():
        raise CrossnasError(f"{source}: base: expected one of the presets {list_presets()}, got {base!r}")
    parent = _resolve(_load_yaml(PRESET_DIR / f"{base}.yaml"), base, (*seen, base))
    return _merge(parent, data)


def overlay_name(raw: dict, hw: HardwareConfig) -> HardwareConfig:
    """An overlay on `base:` without a name of its own is named after its base and its changes."""
    if not raw.get("base") or "name" in raw:
        return hw
    from crossnas.hardware.naming import derived_name

    base = load_hardware(raw["base"])
    hw.name = derived_name(base.name, base.model_dump(), hw.model_dump())
    return hw


def load_hardware(spec: str | Path | dict | HardwareConfig, overrides: dict[str, Any] | None = None
                  ) -> HardwareConfig:
    """A preset name, a YAML path (overlay on `base:`), a dict, or a config; then dotted overrides."""
    if isinstance(spec, HardwareConfig):
        hw = spec
    elif isinstance(spec, dict):
        hw = overlay_name(spec, _validate(_resolve(copy.deepcopy(spec), "hardware"), source="hardware"))
    else:
        s = str(spec)
        if s in list_presets():
            path = PRESET_DIR / f"{s}.yaml"
        elif s.endswith((".yaml", ".yml")) or Path(s).exists():
            path = Path(s)
        else:
            raise CrossnasError(f"hardware: expected a preset {list_presets()} or a .yaml file, got {s!r}")
        raw = _load_yaml(path)
        hw = overlay_name(raw, _validate(_resolve(copy.deepcopy(raw), str(path)), source=str(path)))
    return hw.with_overrides(overrides)


def parse_set_args(items: list[str] | None) -> dict[str, Any]:
    """`--set a.b=value` strings -> {a.b: parsed value} (YAML scalars: 8, 0.1, true, null, name)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise CrossnasError(f"--set {item!r}: expected key=value, e.g. crossbar.rows=128")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_value(v, k.strip())
    return out
