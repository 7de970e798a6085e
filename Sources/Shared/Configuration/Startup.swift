#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Start-up steps both executables share.
public enum Startup {
    /// Reads configuration with `read`; on `--help` prints `help` and exits 0, on a bad setting prints it and exits 2.
    public static func configuration<Configuration>(
        help: String,
        _ read: (ConfigurationReader) throws(ConfigurationError) -> Configuration
    ) -> Configuration {
        do {
            let reader = try ConfigurationReader.process()
            if reader.wantsHelp {
                print(help)
                exit(0)
            }
            return try read(reader)
        } catch {
            let text = Array("configuration error: \(error.message)\n".utf8)
            _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            exit(2)
        }
    }
}
