// jetmoe detokenize: token ids -> text.
#include <iostream>

#include "common.h"
#include "formats/model_files.h"
#include "runtime/id_list.h"

namespace jetmoe::cli {

Command add_detokenize_command(CLI::App& parent) {
  struct Flags {
    std::string tokenizer;
    std::string ids;
    bool skip_special = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* app = parent.add_subcommand("detokenize", "Print the text of comma-separated token ids");
  app->add_option("--tokenizer", flags->tokenizer,
                  "tokenizer.json, tokenizer.model, a directory holding one, or a .gguf model")
      ->required()
      ->type_name("PATH");
  app->add_option("--ids", flags->ids, "Comma-separated token ids, e.g. 1,306,4658")
      ->required()
      ->check(id_list_validator());
  app->add_flag("--skip-special", flags->skip_special, "Leave special tokens such as <s> and </s> out");
  return {app, [flags] {
            const Tokenizer tokenizer = load_model_tokenizer(flags->tokenizer);
            std::cout << tokenizer.decode(parse_id_list(flags->ids), flags->skip_special) << "\n";
          }};
}

}  // namespace jetmoe::cli
