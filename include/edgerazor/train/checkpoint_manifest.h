// A checkpoint folder's manifest.json: the size and a 64-bit checksum of every file in it, written
// before DONE and checked before a resume, so a truncated, zero-filled or edited file is caught
// and the trainer can fall back to an older checkpoint. Torch-free (fuzzed in fuzz/).
#pragma once

#include <cstdint>
#include <string>

namespace edgerazor::train {

// Writes <dir>/manifest.json listing every regular file under dir (relative, '/'-separated).
void write_manifest(const std::string& dir);

// Checks DONE and every file against manifest.json (sizes and 64-bit checksums written at save
// time); FormatError naming the first file that differs. Checkpoints without a manifest (older
// versions) pass on DONE alone. Names must stay inside the folder (no absolute path, no ".."),
// and each must be a regular file.
void verify_checkpoint(const std::string& checkpoint_dir);

// The checksum verify_checkpoint compares (16 hex digits); bytes receives the file's size.
std::string file_checksum(const std::string& path, uint64_t& bytes);

// A checkpoint's small text file (manifest.json, state.json) whole; FormatError when it cannot open.
std::string read_checkpoint_text(const std::string& path);

}  // namespace edgerazor::train
