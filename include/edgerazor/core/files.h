// File-system guards every tool shares. Torch-free.
//
// - Temporaries: writers create <path>.tmp and rename it over <path> when complete. A tracked
//   temporary is also removed when SIGINT/SIGTERM ends the process (cli::run installs the handler),
//   so an interrupted tool leaves neither a half-written output nor an orphaned .tmp.
// - Outputs onto inputs: refuse_output_over_inputs() compares files by device and inode, so
//   "--out M" for the input folder M, or "--out M/model.safetensors", is refused however spelled.
// - Readers of a file refuse what is not a regular file (/dev/zero, a folder, a FIFO).
// - write_error_reason(): why the last write failed, from errno (ENOSPC, EFBIG from ulimit -f...).
#pragma once

#include <string>
#include <vector>

namespace edgerazor::files {

// Registers / unregisters a temporary for removal on SIGINT/SIGTERM (at most 64 at a time;
// paths up to 4095 bytes). Safe to call with a path not registered.
void track_temporary(const std::string& path);
void untrack_temporary(const std::string& path);

// Installs the SIGINT/SIGTERM handler that removes the tracked temporaries, then ends the process
// by the same signal; ignores SIGXFSZ so that a write beyond `ulimit -f` fails with EFBIG (reported
// like a full disk) instead of killing the process without a word. Idempotent.
void install_signal_cleanup();

// "no space left on device", "file size limit exceeded (ulimit -f)", or strerror(errno).
std::string write_error_reason();

// Throws ConfigError "<flag> <output>: ..." when output is one of the inputs (same device and
// inode, however spelled) or a folder that holds one at any depth. Paths that do not exist yet
// are skipped (a new file cannot be an input).
void refuse_output_over_inputs(const std::string& output, const std::vector<std::string>& inputs,
                               const std::string& flag);

// A model or checkpoint folder as inputs: the folder and the files in it that loaders read
// (config.json, *.safetensors and the index, tokenizer files, state.json, *.yaml, *.jinja), so
// that an output onto any of them is refused but a new file beside them is not.
std::vector<std::string> model_folder_inputs(const std::string& dir);

// Throws FormatError "<path>: <what> is not a regular file (...)" for a folder, device or FIFO,
// and "cannot open" when it does not exist.
void require_regular_file(const std::string& path, const std::string& what);

// Writes `text` to <path>.tmp (tracked), syncs it and renames it over `path`: a reader sees the
// old file or the whole new one. FormatError naming the path and the reason on failure.
void write_text_atomically(const std::string& path, const std::string& text);

}  // namespace edgerazor::files
