import HTTPTypes

extension HTTPFields {
    /// The value of the field `name` as `self[name]` reads it (the values of a repeated field joined by ", ", "; " for
    /// cookies), without building that join for a field sent once, as nearly every request sends its fields: the
    /// subscript's lazy join costs each request about a microsecond over the seven fields an ingestion request reads.
    func value(of name: HTTPField.Name) -> String? {
        guard let first = firstIndex(where: { $0.name == name }) else { return nil }
        let rest = index(after: first)
        if rest == endIndex || !self[rest...].contains(where: { $0.name == name }) { return self[first].value }
        return self[name]
    }
}
