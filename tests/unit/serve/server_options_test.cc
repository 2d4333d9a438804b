// validate_server_options: the defaults pass, and an option out of range is refused by the name
// its flag has, so a server started from a library call fails as clearly as from the CLI.
#include "serve/server_options.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace jetmoe::serve {
namespace {

std::string validation_error(const ServerOptions& options) {
  try {
    validate_server_options(options);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ServerOptions, DefaultsAreValidAndTheKvCacheTypeIsF32OrF16) {
  ServerOptions options;
  EXPECT_EQ(options.cache_type, DType::F32);
  EXPECT_EQ(validation_error(options), "");
  options.cache_type = DType::F16;
  EXPECT_EQ(validation_error(options), "");
  for (const DType refused : {DType::BF16, DType::Q8_0}) {
    options.cache_type = refused;
    const std::string message = validation_error(options);
    EXPECT_NE(message.find("--cache-type"), std::string::npos) << message;
    EXPECT_NE(message.find("f16"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace jetmoe::serve
