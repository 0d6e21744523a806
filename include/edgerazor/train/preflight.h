// The checks a run's config needs the model for, done from the models' config.json alone (no
// weights are read): the quantization plan (block sizes against every weight's rows, overrides
// that match nothing, tied weights), the KV block against the head dimension, and data.seq_len
// against each model's max_position_embeddings. `edgerazor-train --check` and Trainer::setup run
// it, so such a config fails at once with the file and the YAML key instead of at the first
// forward pass (or, for a too-long sequence, after minutes of running out of memory).
#pragma once

#include "edgerazor/config/train_config.h"

namespace edgerazor::train {

// Throws ConfigError "<file>: quantization...: <what>" or "<file>: data.seq_len: ..." when the
// config does not fit the models.
void check_config_against_models(const config::TrainConfig& config);

}  // namespace edgerazor::train
