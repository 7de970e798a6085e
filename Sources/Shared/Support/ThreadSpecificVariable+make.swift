import NIOPosix

extension ThreadSpecificVariable {
    /// This thread's value, made by `make` and kept for the thread's life the first time the thread asks.
    public func value(orMake make: () -> Value) -> Value {
        if let current = currentValue { return current }
        let value = make()
        currentValue = value
        return value
    }
}
