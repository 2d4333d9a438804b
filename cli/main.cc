// jetmoe: one binary, one subcommand per job. This file only dispatches; each cmd_*.cc
// declares its flags and calls the library.
//
// Exit codes: 0 success, 1 the work failed (jetmoe::Error: bad file, bad model, ...),
// 2 the command line was wrong (unknown flag, bad value, missing argument).
#include <CLI/CLI.hpp>
#include <iostream>

#include "common.h"
#include "core/error.h"

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int usage_error(const CLI::ParseError& e) {
  std::cerr << "error: " << e.what() << "\nRun 'jetmoe help' or 'jetmoe COMMAND --help' for usage.\n";
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace jetmoe::cli;
  CLI::App app{"jetmoe: run JetMoE mixture-of-experts language models on the CPU", "jetmoe"};
  app.require_subcommand(1);
  app.footer("Run 'jetmoe COMMAND --help' for the flags of one command.");

  std::vector<Command> commands = {
      add_generate_command(app), add_chat_command(app),       add_forward_command(app),
      add_tokenize_command(app), add_detokenize_command(app), add_info_command(app),
      add_init_command(app),     add_bench_command(app),      add_serve_command(app),
      add_prepare_command(app),   add_train_command(app),       add_quantize_command(app),
      add_perplexity_command(app),
  };

  CLI::App* help = app.add_subcommand("help", "Explain jetmoe or one of its commands");
  std::string help_topic;
  help->add_option("command", help_topic, "The command to explain");

  // CLI11 would only say "a subcommand is required" for a misspelled command; name it.
  const auto is_command = [&](const std::string& name) {
    for (const CLI::App* sub : app.get_subcommands({})) if (sub->get_name() == name) return true;
    return false;
  };
  if (argc > 1 && argv[1][0] != '-' && !is_command(argv[1])) {
    return usage_error(CLI::ValidationError("unknown command '" + std::string(argv[1]) + "'"));
  }
  std::vector<std::string> args = spell_out_cache_type_alias(app, argc, argv);  // "-ctk" (common.h)
  std::vector<char*> arg_pointers;
  for (std::string& arg : args) arg_pointers.push_back(arg.data());
  try {
    app.parse(int(arg_pointers.size()), arg_pointers.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return usage_error(e);
  }

  try {
    if (help->parsed()) {
      app.clear();  // CLI11 prints the help of a selected subcommand; deselect "help" itself
      if (help_topic.empty()) {
        std::cout << app.help();
        return 0;
      }
      for (const Command& command : commands) {
        if (command.app->get_name() == help_topic) {
          std::cout << command.app->help("jetmoe");
          return 0;
        }
      }
      throw CLI::ValidationError("help", "no command named '" + help_topic + "'");
    }
    for (const Command& command : commands) {
      if (command.app->parsed()) {
        command.run();
        return 0;
      }
    }
    return kExitUsage;  // unreachable: a subcommand is required
  } catch (const CLI::ParseError& e) {
    return usage_error(e);
  } catch (const jetmoe::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitFailure;
  } catch (const std::exception& e) {
    // Failures outside our own checks (out of memory, filesystem errors): still no crash.
    std::cerr << "error: " << e.what() << "\n";
    return kExitFailure;
  }
}
