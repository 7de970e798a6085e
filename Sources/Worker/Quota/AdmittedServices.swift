import NIOCore
import Synchronization

/// Organization/service pairs the quota admitted recently. A service once admitted stays in its
/// organization's set, so a short-lived positive answer saves a round trip per batch; refusals are
/// never cached, so a raised limit applies at once.
final class AdmittedServices: Sendable {
    private let admitted = Mutex<[ServiceKey: NIODeadline]>([:])
    private let ttlMilliseconds: Int

    init(ttlMilliseconds: Int = 5_000) { self.ttlMilliseconds = ttlMilliseconds }

    func contains(_ key: ServiceKey) -> Bool {
        let now = NIODeadline.now()
        return admitted.withLock { $0[key].map { $0 > now } ?? false }
    }

    func insert(_ key: ServiceKey) {
        let expiry = NIODeadline.now() + .milliseconds(Int64(ttlMilliseconds))
        admitted.withLock { admitted in
            if admitted.count > 100_000 { admitted.removeAll() }
            admitted[key] = expiry
        }
    }
}
