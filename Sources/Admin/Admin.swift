import ArgumentParser

/// `operyn-admin`: inspects and manages the queue, organizations, API keys and dead letters in the same Redis as the
/// gateways and workers.
@main
struct Admin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "operyn-admin",
        abstract: "Inspect and manage Operyn Ingest: queue status, organizations, API keys, dead letters.",
        subcommands: [StatusCommand.self, OrgsCommand.self, KeysCommand.self, DLQCommand.self]
    )
}
