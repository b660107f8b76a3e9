"""A generated PlatformIO project compiled as PlatformIO would, with the Debian arm-none-eabi-gcc.

The file set is PlatformIO's own: ``platformio.fs.match_src_files`` over src/ with the project's
build_src_filter, and over each library with its library.json srcFilter. The flags follow
PlatformIO's order (platformio/builder/tools/piobuild.py, piolib.py): platformio.ini's
build_flags, then the framework's (``frameworks.py``, after the board's -mcpu and FPU flags from
boards/*.toml), minus build_unflags; a library adds its library.json flags (its -I paths relative
to the library) and its own folders, and passes its include paths, not its defines, on to the
project's sources. Flags are sorted into C, C++ and common ones the way SCons's ParseFlags does.

What cannot be built here is the framework: files that include Arduino.h are named, not compiled.
The rest is linked from te_protocol_main (what the sketch's loop() runs) with the library as an
archive, as PlatformIO links it; every symbol left undefined must be one of the port's functions
(te_port.h), which the framework part defines. Anything else undefined (a TFLM kernel the op
resolver registers, a CMSIS-NN function a kernel calls) is an error.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
from pathlib import Path

from tinyeff.boards import Board
from tinyeff.build import toolchain
from tinyeff.build.frameworks import ARDUINO_CORES, ArduinoCore
from tinyeff.errors import TinyeffError

OUT = ".tinyeff-build"  # beside .pio/, which PlatformIO itself would use
ENTRY = "te_protocol_main"  # what loop() in src/main.cpp runs
PORT_HEADER = "src/tinyeff/protocol/te_port.h"
CXX_EXT = ("cc", "cpp", "cxx", "c++")
SRC_EXTS = ["c", "cc", "cpp", "cxx", "c++", "S", "spp", "SPP", "sx", "s", "asm", "ASM"]  # piobuild.SRC_BUILD_EXT
LIB_DEFAULT_FILTER = ["+<*>", "-<.git/>", "-<.svn/>", "-<example/>", "-<examples/>", "-<test/>", "-<tests/>"]
FRAMEWORK_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]Arduino\.h[>"]', re.MULTILINE)
TWO_TOKEN = ("-include", "-imacros", "-isysroot", "-isystem", "-iquote", "-idirafter", "-arch", "--param")


@dataclasses.dataclass
class Env:
    """The part of a PlatformIO (SCons) construction environment that a compile line is made of."""

    cflags: list[str] = dataclasses.field(default_factory=list)
    cxxflags: list[str] = dataclasses.field(default_factory=list)
    ccflags: list[str] = dataclasses.field(default_factory=list)
    defines: list[str] = dataclasses.field(default_factory=list)
    cpppath: list[str] = dataclasses.field(default_factory=list)

    def clone(self) -> "Env":
        return Env(*(list(v) for v in dataclasses.astuple(self)))

    def process(self, flags: list[str], cwd: Path) -> None:
        """Append FLAGS (platformio.ini or library.json items, several flags each) sorted as ParseFlags does;
        relative include paths are CWD's."""
        tokens = [t for item in flags for t in shlex.split(item)]
        i = 0
        while i < len(tokens):
            t = tokens[i]
            if t in ("-D", "-I") and i + 1 < len(tokens):
                t, i = t + tokens[i + 1], i + 1
            if t.startswith("-D"):
                self.defines.append(t[2:])
            elif t.startswith("-I"):
                _append_unique(self.cpppath, [str((cwd / t[2:]).resolve())])
            elif t.startswith("-std="):
                (self.cxxflags if "++" in t else self.cflags).append(t)
            elif t in TWO_TOKEN and i + 1 < len(tokens):
                self.ccflags += [t, tokens[i + 1]]
                i += 1
            elif not t.startswith(("-Wl,", "-l", "-L", "-Wa,")):  # linker and assembler flags do not compile C
                self.ccflags.append(t)
            i += 1

    def unflag(self, flags: list[str]) -> None:
        """Remove FLAGS (build_unflags) wherever they are, as ProcessUnFlags does (-DNAME takes NAME=any too)."""
        for t in (t for item in flags for t in shlex.split(item)):
            for scope in (self.cflags, self.cxxflags, self.ccflags):
                while t in scope:
                    scope.remove(t)
            if t.startswith("-D"):
                self.defines[:] = [d for d in self.defines if d != t[2:] and d.split("=", 1)[0] != t[2:]]

    def argv(self, source: Path, obj: Path) -> tuple[str, ...]:
        cxx = source.suffix[1:] in CXX_EXT
        lang = self.cxxflags if cxx else self.cflags
        return (toolchain.tool("g++" if cxx else "gcc"), "-o", str(obj), "-c", *lang, *self.ccflags,
                *(f"-D{d}" for d in self.defines), *(f"-I{p}" for p in self.cpppath), str(source))


def _append_unique(into: list[str], items: list[str]) -> None:
    into += [p for p in items if p not in into]


def _prepend_unique(into: list[str], items: list[str]) -> None:
    into[:0] = [p for p in items if p not in into]


@dataclasses.dataclass(frozen=True)
class Library:
    name: str
    root: Path  # where its sources are (the TFLM tree for tflm)
    manifest: Path  # its library.json


@dataclasses.dataclass(frozen=True)
class PioBuild:
    """What the PlatformIO-like build made."""

    elf: Path
    sizes: toolchain.Sizes
    compiled: tuple[str, ...]  # every translation unit built, project-relative or library-relative
    needs_framework: tuple[str, ...]  # src/ files that include Arduino.h: not compiled
    left_for_framework: tuple[str, ...]  # symbols the linked part leaves to the framework part
    rebuilt: int
    warned: int
    log: Path
    core: ArduinoCore


def _config(project: Path):
    from platformio.project.config import ProjectConfig

    config = ProjectConfig(str(project / "platformio.ini"))
    envs = config.default_envs() or config.envs()
    if not envs:
        raise TinyeffError(f"{project / 'platformio.ini'} defines no [env:...]; regenerate the project with 'tinyeff generate'")
    return config, f"env:{envs[0]}"


def libraries(project: Path, tflm_root: Path | None) -> list[Library]:
    """The project's lib_deps, which must be local (symlink:// or file://): nothing is downloaded."""
    config, env = _config(project)
    libs = []
    for spec in config.get(env, "lib_deps"):
        name, _, url = spec.rpartition("=")
        scheme, _, where = url.partition("://")
        if scheme not in ("symlink", "file"):
            raise TinyeffError(f"lib_deps entry '{spec}' in {project / 'platformio.ini'} comes from PlatformIO's registry, "
                               "which this build does not download from; build the project with 'pio run'")
        path = (project / where).resolve()
        name = name or path.name
        root = tflm_root if (name == "tflm" and tflm_root is not None) else path
        libs.append(Library(name, root, path / "library.json"))
    return libs


def _library_build(lib: Library) -> dict:
    from platformio.package.manifest.parser import ManifestParserFactory

    if not lib.manifest.is_file():
        raise TinyeffError(f"library '{lib.name}' has no library.json at {lib.manifest}; regenerate the project with 'tinyeff generate'")
    return ManifestParserFactory.new_from_file(str(lib.manifest)).as_dict().get("build", {})


def _port_functions(project: Path) -> set[str]:
    return set(re.findall(r"\b(te_port_\w+)\s*\(", (project / PORT_HEADER).read_text()))


def main_env(project: Path, board: Board) -> tuple[Env, ArduinoCore, tuple[str, ...]]:
    """The environment every file of PROJECT starts from, as piobuild.ProcessProgramDeps makes it:
    build_flags, then the framework's flags, then build_unflags; with the Arduino core and the
    architecture flags (the board's, then the core's float ABI)."""
    config, env_name = _config(project)
    platform = config.get(env_name, "platform")
    core = ARDUINO_CORES.get(platform)
    if core is None or "arduino" not in config.get(env_name, "framework"):
        raise TinyeffError(f"tinyeff knows the Arduino core flags of PlatformIO platforms {', '.join(ARDUINO_CORES)}, not "
                           f"'{platform}' with {config.get(env_name, 'framework')}; build this project with 'pio run'")
    cpu = next((f.split("=", 1)[1] for f in board.cflags if f.startswith("-mcpu=")), "")
    arch = (*board.cflags, *core.float_abi.get(cpu, ()))
    env = Env()
    env.process(config.get(env_name, "build_flags"), project)
    env.cflags += core.c
    env.cxxflags += core.cxx
    env.ccflags += [*arch, *core.common]
    env.unflag(config.get(env_name, "build_unflags"))
    return env, core, arch


def _library_units(lib: Library, main: Env, project_env: Env, out: Path) -> list[toolchain.Unit]:
    """LIB's sources by its srcFilter, with its flags (piolib.PlatformIOLibBuilder); its include
    paths, not its defines, go on to PROJECT_ENV."""
    from platformio.fs import match_src_files

    spec = _library_build(lib)
    src_dir = (lib.root / spec.get("srcDir", ".")).resolve()
    include_dir = (lib.root / spec.get("includeDir", ".")).resolve()
    env = main.clone()
    env.process(spec.get("flags", []), lib.root)
    env.unflag(spec.get("unflags", []))
    _prepend_unique(env.cpppath, [str(include_dir), str(src_dir)])
    _prepend_unique(project_env.cpppath, env.cpppath)
    units = []
    for rel in sorted(match_src_files(str(src_dir), spec.get("srcFilter") or LIB_DEFAULT_FILTER, SRC_EXTS)):
        obj = out / "lib" / lib.name / f"{rel}.o"
        units.append(toolchain.Unit(f"{lib.name}/{rel}", src_dir / rel, obj, env.argv(src_dir / rel, obj)))
    return units


def _src_units(project: Path, env: Env, out: Path) -> tuple[list[toolchain.Unit], list[str]]:
    """src/ by build_src_filter: the units to compile, and the files that need the framework."""
    from platformio.fs import match_src_files

    config, env_name = _config(project)
    src = project / "src"
    units, framework = [], []
    for rel in sorted(match_src_files(str(src), config.get(env_name, "build_src_filter"), SRC_EXTS)):
        if FRAMEWORK_INCLUDE.search((src / rel).read_text(errors="replace")):
            framework.append(f"src/{rel}")
        else:
            obj = out / "src" / f"{rel}.o"
            units.append(toolchain.Unit(f"src/{rel}", src / rel, obj, env.argv(src / rel, obj)))
    return units, framework


def build(project: Path, board: Board, libs: list[Library], jobs: int, progress=None) -> PioBuild:
    """Compile PROJECT's PlatformIO file set for BOARD (an Arm board with the Arduino framework)
    under PROJECT/.tinyeff-build and link what does not need the framework."""
    out = project / OUT
    main, core, arch = main_env(project, board)
    project_env = main.clone()
    lib_units = {lib.name: _library_units(lib, main, project_env, out) for lib in libs}
    config, env_name = _config(project)
    project_env.process(config.get(env_name, "build_src_flags"), project)
    _prepend_unique(project_env.cpppath, [str(d) for d in (project / "include", project / "src") if d.is_dir()])
    src_units, needs_framework = _src_units(project, project_env, out)
    units = src_units + [u for us in lib_units.values() for u in us]

    cxx = any(u.source.suffix[1:] in CXX_EXT for u in units)
    toolchain.require_libraries(arch, cxx)
    log = out / "build.log"
    rebuilt, warned = toolchain.compile_units(units, jobs, log, progress)

    archives = []
    for name, members in lib_units.items():  # each library an archive, as PlatformIO's lib_archive default makes it
        archive = out / f"lib{name}.a"
        archive.unlink(missing_ok=True)
        if members:
            subprocess.run([toolchain.tool("ar"), "rcs", str(archive), *(str(u.obj) for u in members)], check=True)
            archives.append(archive)
    elf = out / "firmware-without-framework.elf"
    left = link_without_framework(elf, arch, [u.obj for u in src_units], archives, cxx)
    unexpected = sorted(set(left) - _port_functions(project))
    if unexpected:
        shown = ", ".join(unexpected[:8]) + (f" and {len(unexpected) - 8} more" if len(unexpected) > 8 else "")
        raise TinyeffError(f"linking {project.name} without the framework left {shown} undefined, which only the Arduino port "
                           f"may leave (te_port.h): a source is missing from the build (for TFLM: a kernel or CMSIS-NN file "
                           f"that the tree or tflm/library.json's srcFilter leaves out); see {elf.with_suffix('.map')}")
    return PioBuild(elf, toolchain.sizes(elf), tuple(u.name for u in units), tuple(needs_framework), tuple(left),
                    rebuilt, warned, log, core)


def link_without_framework(elf: Path, arch: tuple[str, ...], objects: list[Path], archives: list[Path], cxx: bool) -> list[str]:
    """Link from ENTRY with the toolchain's start files, newlib and libstdc++, as PlatformIO's Arduino
    builds do (crtbegin.o defines __dso_handle, which C++ statics with destructors name when the core
    does not build with -fno-use-cxa-atexit, as ArduinoCore-mbed does not); the symbols left undefined."""
    argv = [toolchain.tool("g++" if cxx else "gcc"), *arch, "-Os", "--specs=nano.specs", "--specs=nosys.specs",
            "-Wl,--gc-sections", f"-Wl,--entry={ENTRY}", "-Wl,--unresolved-symbols=ignore-all",
            f"-Wl,-Map={elf.with_suffix('.map')}", *map(str, objects),
            "-Wl,--start-group", *map(str, archives), "-lm", "-Wl,--end-group", "-o", str(elf)]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode:
        raise TinyeffError(f"linking {elf.name} failed; the linker's last lines:\n{r.stderr.strip()[-toolchain.ERROR_TAIL_CHARS:]}")
    nm = subprocess.run([toolchain.tool("nm"), "-u", str(elf)], capture_output=True, text=True, check=True).stdout
    return sorted(line.split()[-1] for line in nm.splitlines() if line.split()[:1] == ["U"])
