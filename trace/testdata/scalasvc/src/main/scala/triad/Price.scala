package triad

import com.sun.net.httpserver.{HttpExchange, HttpServer}
import io.opentelemetry.api.common.Attributes
import io.opentelemetry.api.trace.{SpanKind, StatusCode, Tracer}
import io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator
import io.opentelemetry.context.Context
import io.opentelemetry.context.propagation.TextMapGetter
import io.opentelemetry.exporter.otlp.http.trace.OtlpHttpSpanExporter
import io.opentelemetry.instrumentation.resources.ProcessResource
import io.opentelemetry.sdk.OpenTelemetrySdk
import io.opentelemetry.sdk.resources.Resource
import io.opentelemetry.sdk.trace.SdkTracerProvider
import io.opentelemetry.sdk.trace.export.BatchSpanProcessor

import java.net.InetSocketAddress
import java.nio.charset.StandardCharsets
import java.time.Duration
import scala.jdk.CollectionConverters._

/** The Scala sample service: GET /price, called by the Python service.
  * Exports OTLP/HTTP protobuf to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.
  *
  * Usage: Price PORT
  */
object Price {
  private object HeaderGetter extends TextMapGetter[HttpExchange] {
    override def keys(x: HttpExchange): java.lang.Iterable[String] = x.getRequestHeaders.keySet()
    override def get(x: HttpExchange, key: String): String =
      Option(x.getRequestHeaders.getFirst(key)).orNull
  }

  def main(args: Array[String]): Unit = {
    val port     = args.headOption.map(_.toInt).getOrElse(0)
    val endpoint = sys.env.getOrElse("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")
    // OTEL_RESOURCE_ATTRIBUTES (k=v,k=v) is merged last, as the SDK's
    // autoconfiguration does: tests rename the service and add runtime
    // attributes with it.
    val fromEnv = Attributes.builder()
    sys.env.get("OTEL_RESOURCE_ATTRIBUTES").toList.flatMap(_.split(",")).map(_.split("=", 2)).foreach {
      case Array(k, v) if k.trim.nonEmpty => fromEnv.put(k.trim, v.trim)
      case _                              =>
    }
    val resource = Resource.getDefault
      .merge(ProcessResource.get())
      .merge(Resource.create(Attributes.builder().put("service.name", "price-scala").build()))
      .merge(Resource.create(fromEnv.build()))
    val exporter = OtlpHttpSpanExporter.builder().setEndpoint(endpoint).build()
    val provider = SdkTracerProvider.builder()
      .setResource(resource)
      .addSpanProcessor(BatchSpanProcessor.builder(exporter).setScheduleDelay(Duration.ofMillis(200)).build())
      .build()
    val otel   = OpenTelemetrySdk.builder().setTracerProvider(provider).build()
    // PRICE_TRACER_SCOPE names the instrumentation scope (a test makes it
    // a Scala library's).
    val tracer = otel.getTracer(sys.env.getOrElse("PRICE_TRACER_SCOPE", "triad.testdata.scalasvc"))
    sys.addShutdownHook(provider.shutdown().join(java.util.concurrent.TimeUnit.SECONDS.toMillis(10), java.util.concurrent.TimeUnit.MILLISECONDS))

    val server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 0)
    server.createContext("/price", (x: HttpExchange) => handle(tracer, x))
    server.start()
    println(s"price-scala listening on 127.0.0.1:${server.getAddress.getPort}")
    Console.flush()
  }

  private def handle(tracer: Tracer, x: HttpExchange): Unit = {
    val parent = W3CTraceContextPropagator.getInstance().extract(Context.current(), x, HeaderGetter)
    val span = tracer.spanBuilder("GET /price").setParent(parent).setSpanKind(SpanKind.SERVER)
      .setAttribute("http.request.method", "GET").setAttribute("url.path", "/price").startSpan()
    val scope = span.makeCurrent()
    // The server span ends before the answer is sent: its caller's span
    // ends after it has the answer, so the server's fits inside.
    val (status, body) =
      try {
        val lookup = tracer.spanBuilder("price lookup").startSpan()
        val prices = try {
          Thread.sleep(10)
          List(19.99, 5.25, 3.10)
        } finally lookup.end()
        span.setAttribute("http.response.status_code", 200L)
        (200, f"""{"total": ${prices.sum}%.2f}""".getBytes(StandardCharsets.UTF_8))
      } catch {
        case e: Exception =>
          span.setStatus(StatusCode.ERROR, e.toString)
          (500, Array.emptyByteArray)
      } finally {
        scope.close()
        span.end()
      }
    try {
      x.getResponseHeaders.add("Content-Type", "application/json")
      x.sendResponseHeaders(status, if (body.isEmpty) -1L else body.length.toLong)
      if (body.nonEmpty) x.getResponseBody.write(body)
    } finally x.close()
  }
}
