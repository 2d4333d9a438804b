// jetmoe tokenize: text -> one JSON array of token ids.
#include <iostream>

#include "common.h"
#include "formats/model_files.h"
#include "runtime/id_list.h"

namespace jetmoe::cli {

Command add_tokenize_command(CLI::App& parent) {
  struct Flags {
    std::string tokenizer;
    std::string text;
    bool no_bos = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* app = parent.add_subcommand("tokenize", "Print the token ids of a text as one JSON array");
  app->add_option("--tokenizer", flags->tokenizer,
                  "tokenizer.json, tokenizer.model, a directory holding one, or a .gguf model")
      ->required()
      ->type_name("PATH");
  app->add_option("-p,--prompt", flags->text, "Text to tokenize")->required();
  app->add_flag("--no-bos", flags->no_bos, "Do not put BOS first");
  return {app, [flags] {
            const Tokenizer tokenizer = load_model_tokenizer(flags->tokenizer);
            std::cout << format_id_list(tokenizer.encode(flags->text, !flags->no_bos)) << "\n";
          }};
}

}  // namespace jetmoe::cli
