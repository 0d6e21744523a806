// Private: lets the run-config parser read a `quantization` section from its own YAML tree.
#pragma once

#include "edgerazor/config/quant_config.h"
#include "yaml_util.h"

namespace edgerazor::config::detail {
QuantConfig read_quant_section(const yaml::Located& at);
}
