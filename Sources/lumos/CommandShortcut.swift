import ArgumentParser

/// Parses `lumos vm start UUID` as the leaf command `start` alone instead of as the whole tree.
///
/// Why: ArgumentParser builds the tree of every command before parsing, and names each command
/// without an explicit `commandName` by `String(describing:)` of its type. In a binary with
/// Foundation linked statically every such call scans all protocol conformance records, which
/// made the tree ~40% of a `vmadm start` (3-4 ms of CPU per command). Walking down by name with
/// `_typeName` costs nothing; a leaf parsed as a root needs no tree.
///
/// Only a successful parse into the leaf is taken: on a parse error, help or version request the caller
/// parses again through the whole tree, so usage, help and error texts are unchanged.
enum CommandShortcut {
    static func parse(_ root: ParsableCommand.Type, _ args: [String]) -> ParsableCommand? {
        var node = root
        var rest = args[...]
        while let word = rest.first, !word.hasPrefix("-"), !node.configuration.subcommands.isEmpty {
            guard let next = node.configuration.subcommands.first(where: { names($0).contains(word) }) else { return nil }
            node = next
            rest = rest.dropFirst()
        }
        // Groups keep their own behaviour (default subcommand, help listing).
        guard node != root, node.configuration.subcommands.isEmpty else { return nil }
        // A help request comes back as ArgumentParser's own help command: not ours to take.
        guard let command = try? node.parseAsRoot(Array(rest)), type(of: command) == node else { return nil }
        return command
    }

    /// The names a command answers to, as ArgumentParser derives them.
    static func names(_ type: ParsableCommand.Type) -> [String] {
        let config = type.configuration
        return [config.commandName ?? snakeCase(_typeName(type, qualified: false))] + config.aliases
    }

    /// ArgumentParser's `convertedToSnakeCase(separator: "-")`: "CreateSnapshot" → "create-snapshot",
    /// "URLList" → "url-list".
    static func snakeCase(_ name: String) -> String {
        let chars = Array(name)
        var result = ""
        var separateOnUppercase = true
        for (i, c) in chars.enumerated() {
            if c.isUppercase {
                if separateOnUppercase && !result.isEmpty { result += "-" }
                separateOnUppercase = i + 2 < chars.count && chars[i + 1].isUppercase && chars[i + 2].isLowercase
            } else {
                separateOnUppercase = c != "-"
            }
            result += c.lowercased()
        }
        return result
    }
}
