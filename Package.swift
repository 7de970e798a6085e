// swift-tools-version:6.0
import PackageDescription

/// One settings list for every target.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "operyn-ingest",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "operyn-gateway", targets: ["Gateway"]),
        .executable(name: "operyn-worker", targets: ["Worker"]),
        .executable(name: "operyn-redis-bench", targets: ["RedisBench"]),
        .library(name: "Shared", targets: ["Shared"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2")
    ],
    targets: [
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .target(
            name: "Shared",
            dependencies: [
                "CHiredis",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "Gateway",
            dependencies: [
                "Shared",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "Worker",
            dependencies: [
                "Shared",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "RedisBench",
            dependencies: ["Shared"],
            path: "Benchmarks/RedisBench",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SharedTests",
            dependencies: ["Shared"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: ["Gateway", "Shared"],
            swiftSettings: swiftSettings
        ),
    ]
)
