// Reading a whole file into memory: configs, tokenizers, chat templates, and the text files a
// user names on the command line.
#pragma once

#include <string>

namespace jetmoe {

// The whole file as bytes; throws an Error naming the path if it cannot be opened or read.
std::string read_text_file(const std::string& path);

}  // namespace jetmoe
