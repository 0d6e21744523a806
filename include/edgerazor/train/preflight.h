// The checks a run's quantization section needs the model for, done from the student's
// config.json alone (no weights are read): the quantization plan (block sizes against every
// weight's rows, overrides that match nothing, tied weights) and the KV block against the head
// dimension. `edgerazor-train --check` and Trainer::setup run it, so such a config fails at once
// with the file and the YAML key instead of at the first forward pass.
#pragma once

#include "edgerazor/config/train_config.h"

namespace edgerazor::train {

// Throws ConfigError "<file>: quantization...: <what>" when the plan cannot be made.
void check_quantization_against_model(const config::TrainConfig& config);

}  // namespace edgerazor::train
