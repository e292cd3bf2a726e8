"""What `hw.generate --soc` writes beside the SoC wrapper's Verilog: the manifest's `soc` object, the C header
(compiled by the system's C and C++ compilers, its values printed by the compiled program), the Python module
and the FuseSoC core (its lint target run by FuseSoC on Verilator, marked rtl). The expected offsets and bits
are contract.soc's (the driver's), the beat widths the program engine's ports (hw.program_engine)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest

from contract import soc
from contract.bitplanes import PlaneLayout
from contract.config import EngineConfig
from contract.program import ProgramLimits
from contract.soc import BusParameters
from eda.tools import verilator_env
from hw.generate import generate
from hw.program_engine import stream_layouts
from hw.soc_files import CORE_NAME, CORE_VLN, HEADER_NAME, MODULE_NAME

CONFIG = EngineConfig(rows=4, cols=4, max_m=64, max_k=256, max_n=64)
LIMITS = ProgramLimits(256, max_size=8, max_channels=16, max_n_tiles=4)
BUS = BusParameters(bus_bytes=16, burst=4, address_bits=40)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("soc") / "gen"
    generate(CONFIG, out, LIMITS, BUS)
    return out


def expected_values() -> dict[str, int]:
    """Every register offset and bit of contract.soc, and the beat widths of the engine's ports."""
    layouts = stream_layouts(CONFIG, LIMITS.words, LIMITS.max_size, LIMITS.max_channels, LIMITS.max_operands)
    values = {register.name: register.offset for register in soc.registers()} | soc.bits()
    values |= {f"{name.upper()}_BEAT_BITS": layouts[name].size for name in soc.REGIONS}
    values |= dict(IDENTIFIER=soc.IDENTIFIER, REGISTER_VERSION=soc.REGISTER_VERSION, BUS_BYTES=16, BURST=4)
    planes = PlaneLayout(CONFIG.rows, CONFIG.cols, CONFIG.base_bits, 16)
    values |= dict(WEIGHT_TILE_CODES=planes.tile_codes, WEIGHT_PLANES=planes.base_bits)
    return values | dict(ADDRESS_BITS=40, REGION_ALIGNMENT=64, WEIGHT_PLANE_BYTES=planes.plane_bytes)


@pytest.mark.parametrize("compiler, flags", [("gcc", ["-std=c89", "-pedantic"]), ("g++", ["-std=c++11"])])
def test_the_c_header_compiles_and_holds_the_register_map(generated, tmp_path, compiler, flags):
    if shutil.which(compiler) is None:
        pytest.fail(f"{compiler} is not installed: the C header cannot be checked")
    expected = expected_values()
    prints = "\n".join(f'    printf("{name} %lu\\n", (unsigned long)NESTMAC_{name});' for name in expected)
    source = tmp_path / "regs.c"
    body = f"int main(void)\n{{\n{prints}\n    return 0;\n}}\n"
    source.write_text(f'#include <stdio.h>\n#include "{HEADER_NAME}"\n{body}')
    binary = tmp_path / "regs"
    command = [compiler, *flags, "-Wall", "-Wextra", "-Werror", "-x", "c" if compiler == "gcc" else "c++"]
    build = subprocess.run([*command, f"-I{generated}", str(source), "-o", str(binary)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    printed = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout.split()
    assert dict(zip(printed[::2], map(int, printed[1::2]), strict=True)) == expected


def test_the_python_module_holds_the_same_map(generated):
    spec = importlib.util.spec_from_file_location("nestmac_regs", generated / MODULE_NAME)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert {name: getattr(module, name) for name in expected_values()} == expected_values()
    assert module.REGISTERS == {register.name: register.offset for register in soc.registers()}


def test_the_manifest_lists_the_bus_parameters_and_the_ports_bear_them(generated):
    manifest = json.loads((generated / "manifest.json").read_text())
    axi = manifest["soc"]["axi"]
    assert manifest["top"] == "nestmac_soc" and (generated / "nestmac_soc.v").is_file()
    assert (axi["bus_bytes"], axi["burst"], axi["address_bits"], axi["data_bits"]) == (16, 4, 40, 128)
    widths = {port["name"]: port["width"] for port in manifest["ports"]}
    assert (widths["m_axi__rdata"], widths["m_axi__araddr"], widths["s_axil__wdata"]) == (128, 40, 32)
    regions = manifest["soc"]["regions"]
    tile = PlaneLayout(CONFIG.rows, CONFIG.cols, CONFIG.base_bits, 16).tile_bytes  # the weights: bit-plane tiles
    assert [region["beat_bytes"] for region in regions] == [
        tile if region["name"] == "weight" else soc.beat_stride(region["beat_bits"], 16) for region in regions
    ]


def test_a_bad_bus_is_one_error_line_and_writes_nothing(tmp_path):
    out = tmp_path / "gen"
    result = subprocess.run(
        [sys.executable, "-m", "hw.generate", "--soc", "--bus-bytes", "16", "--burst", "512", "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stderr.startswith("error: burst must be")
    assert len(result.stderr.splitlines()) == 1 and not out.exists()


@pytest.mark.rtl
def test_the_fusesoc_core_lints_on_verilator(generated, tmp_path):
    if shutil.which("fusesoc", path=f"{sys.prefix}/bin") is None:
        pytest.fail("fusesoc is not installed: pip install -e '.[dev]'")
    _, env = verilator_env()
    env |= {"XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert (generated / CORE_NAME).is_file()
    command = [f"{sys.prefix}/bin/fusesoc", "--cores-root", str(generated), "run"]
    command += ["--build-root", str(tmp_path / "build"), "--target", "lint", CORE_VLN]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
