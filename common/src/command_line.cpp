// command_line.cpp — parsing `--name VALUE` options with clear errors.
#include "iocp_chat/command_line.hpp"

#include <charconv>
#include <cstdio>

namespace iocp_chat {

CommandLine::CommandLine(std::string program, std::string summary, std::string example)
    : program_(std::move(program)), summary_(std::move(summary)), example_(std::move(example)) {
  options_.push_back({"--help", "", "show this help and exit", nullptr});
}

void CommandLine::flag(std::string name, std::string help, bool& target) {
  options_.push_back({std::move(name), "", std::move(help), [&target](std::string_view) {
                        target = true;
                        return std::string();
                      }});
}

void CommandLine::text(std::string name, std::string value_name, std::string help, std::string& target) {
  options_.push_back(
      {std::move(name), std::move(value_name), std::move(help), [&target](std::string_view value) {
         target = std::string(value);
         return std::string();
       }});
}

void CommandLine::texts(std::string name, std::string value_name, std::string help,
                        std::vector<std::string>& target) {
  options_.push_back(
      {std::move(name), std::move(value_name), std::move(help), [&target](std::string_view value) {
         target.emplace_back(value);
         return std::string();
       }});
}

void CommandLine::number(std::string name, std::string help, std::uint64_t& target, std::uint64_t minimum,
                         std::uint64_t maximum) {
  options_.push_back(
      {std::move(name), "N", std::move(help), [&target, minimum, maximum](std::string_view value) {
         std::uint64_t parsed = 0;
         const auto [end, status] = std::from_chars(value.data(), value.data() + value.size(), parsed);
         if (status != std::errc() || end != value.data() + value.size() || parsed < minimum ||
             parsed > maximum) {
           return "expects a whole number from " + std::to_string(minimum) + " to " +
                  std::to_string(maximum) + ", got '" + std::string(value) + "'";
         }
         target = parsed;
         return std::string();
       }});
}

void CommandLine::custom(std::string name, std::string value_name, std::string help,
                         std::function<std::string(std::string_view)> apply) {
  options_.push_back({std::move(name), std::move(value_name), std::move(help), std::move(apply)});
}

ParseOutcome CommandLine::parse(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view argument = argv[i];
    std::string_view inline_value;
    bool has_inline_value = false;
    if (const auto equals = argument.find('=');
        argument.starts_with("--") && equals != std::string_view::npos) {
      inline_value = argument.substr(equals + 1);  // --port=42006
      argument = argument.substr(0, equals);
      has_inline_value = true;
    }
    if (argument == "--help" || argument == "-h") {
      std::fputs(usage().c_str(), stdout);
      return ParseOutcome::help;
    }
    const Option* option = nullptr;
    for (const Option& candidate : options_) {
      if (candidate.name == argument) option = &candidate;
    }
    if (option == nullptr) {
      std::fprintf(stderr, "%s: unknown option '%s' (try --help)\n", program_.c_str(), argv[i]);
      return ParseOutcome::error;
    }
    std::string_view value;
    if (!option->value_name.empty()) {
      if (has_inline_value) {
        value = inline_value;
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        std::fprintf(stderr, "%s: %s needs a value (%s)\n", program_.c_str(), option->name.c_str(),
                     option->value_name.c_str());
        return ParseOutcome::error;
      }
    }
    if (const std::string problem = option->apply(value); !problem.empty()) {
      std::fprintf(stderr, "%s: %s %s\n", program_.c_str(), option->name.c_str(), problem.c_str());
      return ParseOutcome::error;
    }
  }
  return ParseOutcome::run;
}

std::string CommandLine::usage() const {
  std::string text = program_ + " — " + summary_ + "\n\nOptions:\n";
  for (const Option& option : options_) {
    std::string left = "  " + option.name + (option.value_name.empty() ? "" : " " + option.value_name);
    if (left.size() < 26) left.resize(26, ' ');
    text += left + " " + option.help + "\n";
  }
  if (!example_.empty()) text += "\n" + example_ + "\n";
  return text;
}

}  // namespace iocp_chat
