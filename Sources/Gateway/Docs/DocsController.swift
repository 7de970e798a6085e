import HTTPTypes
import Hummingbird
import NIOCore

/// `/openapi.json`, `/api` (Swagger UI) and `/reference` (Scalar). The pages load their scripts and
/// styles from `assetsURL`, so an offline deployment can host them itself.
struct DocsController<Context: RequestContext> {
    let document: String
    let assetsURL: String

    var endpoints: RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        let swagger = swaggerPage
        let scalar = scalarPage
        let document = document
        routes.get("openapi.json") { _, _ in Self.page(document, type: "application/json; charset=utf-8") }
        routes.get("api") { _, _ in Self.page(swagger, type: "text/html; charset=utf-8") }
        routes.get("reference") { _, _ in Self.page(scalar, type: "text/html; charset=utf-8") }
        return routes
    }

    var swaggerPage: String {
        """
        <!doctype html>
        <html lang="en">
        <head>
          <meta charset="utf-8"><title>Operyn Ingestion API</title>
          <link rel="stylesheet" href="\(assetsURL)/swagger-ui-dist@5/swagger-ui.css">
        </head>
        <body>
          <div id="swagger-ui"></div>
          <script src="\(assetsURL)/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
          <script>window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });</script>
        </body>
        </html>
        """
    }

    var scalarPage: String {
        """
        <!doctype html>
        <html lang="en">
        <head><meta charset="utf-8"><title>Operyn Ingestion API reference</title></head>
        <body>
          <script id="api-reference" data-url="/openapi.json"></script>
          <script src="\(assetsURL)/@scalar/api-reference"></script>
        </body>
        </html>
        """
    }

    static func page(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
