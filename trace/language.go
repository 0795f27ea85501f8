package trace

import (
	"regexp"
	"strings"
)

// Languages names the language of each span's service, first match wins:
//
//  1. Services: a configured service → language mapping;
//  2. Attribute: a configured resource attribute (e.g. "service.language");
//  3. telemetry.sdk.language, the SDK's own word; a JVM SDK says "java"
//     for Scala, Kotlin and Clojure services too, so for "java" (or no
//     word) the JVM signals below may name the JVM language, in this
//     order: the runtime's own description, the command line, the
//     telemetry distribution, the instrumentation scopes (see jvmLanguage);
//  4. heuristics over the runtime's name when the SDK says nothing.
//
// The result is lowercase; "" when nothing tells.
type Languages struct {
	Services  map[string]string `yaml:"services"`
	Attribute string            `yaml:"attribute"`
}

// Language names the language of a span of service with this resource
// and the instrumentation scopes its process used, and how it was
// decided: "config", "attribute", "sdk", "heuristic" or "".
func (l Languages) Language(service string, resource map[string]any, scopes ...string) (lang, how string) {
	if v, ok := l.Services[service]; ok && v != "" {
		return strings.ToLower(v), "config"
	}
	if l.Attribute != "" {
		if v, ok := resource[l.Attribute].(string); ok && v != "" {
			return strings.ToLower(v), "attribute"
		}
	}
	sdk, _ := resource["telemetry.sdk.language"].(string)
	sdk = strings.ToLower(sdk)
	if sdk == "java" || sdk == "" {
		if jvm := jvmLanguage(resource, scopes); jvm != "" {
			return jvm, "heuristic"
		}
	}
	if sdk != "" {
		return normalise(sdk), "sdk"
	}
	if h := guess(resource); h != "" {
		return h, "heuristic"
	}
	return "", ""
}

// normalise maps SDK spellings to one name per language.
func normalise(sdk string) string {
	switch sdk {
	case "cpp":
		return "c++"
	case "nodejs", "webjs":
		return "javascript"
	}
	return sdk
}

// jvmLanguages are the languages on the JVM triad tells apart from Java,
// each with the signals a service of it sends.
var jvmLanguages = []struct {
	name string
	// stdlib: its standard library's jar or directory, on a class path
	// or command line.
	stdlib []string
	// jarSuffixes: the fat jar its usual build tool makes.
	jarSuffixes []*regexp.Regexp
	// mainClass: the shape its compiler gives a main class.
	mainClass *regexp.Regexp
	// distros: telemetry.distro.name words of its own SDKs.
	distros []string
	// scopes: scope name prefixes of its libraries' instrumentation.
	scopes []string
}{
	{
		name:   "scala",
		stdlib: []string{"scala-library", "scala3-library", "/scala/"},
		// sbt-assembly: <name>-assembly-<version>.jar or <name>-assembly.jar.
		jarSuffixes: []*regexp.Regexp{regexp.MustCompile(`-assembly(-[0-9][^/\s:;]*)?\.jar\b`)},
		distros:     []string{"scala", "otel4s"},
		scopes:      []string{"scala.", "akka.", "org.apache.pekko.", "zio.", "cats.", "sttp.", "org.http4s.", "otel4s", "com.twitter.finagle."},
	},
	{
		name:   "kotlin",
		stdlib: []string{"kotlin-stdlib", "kotlin-reflect"},
		// Kotlin compiles a file's top-level main into <File>Kt.
		mainClass: regexp.MustCompile(`(^|[\s.])[A-Z][A-Za-z0-9_]*Kt(\s|$)`),
		distros:   []string{"kotlin"},
		scopes:    []string{"io.ktor.", "kotlinx.", "org.jetbrains.exposed.", "io.opentelemetry.kotlin"},
	},
	{
		name:   "clojure",
		stdlib: []string{"/clojure-1.", "clojure-1.", "/org/clojure/clojure/", "clojure.main"},
		// Leiningen: <name>-<version>-standalone.jar.
		jarSuffixes: []*regexp.Regexp{regexp.MustCompile(`-standalone\.jar\b`)},
		distros:     []string{"clojure", "clj-otel"},
		scopes:      []string{"clojure.", "clj-otel", "steffan-westcott.clj-otel", "ring.", "aleph.", "pedestal."},
	},
}

var languageWord = regexp.MustCompile(`\b(scala|kotlin|clojure)\b`)

// jvmLanguage recognises Scala, Kotlin and Clojure services on the Java
// SDK (which reports telemetry.sdk.language=java for all of them), by the
// signals a real JVM service sends, strongest first:
//
//  1. the runtime's description or name naming the language
//     (process.runtime.description "… Scala 2.13.15");
//  2. the command line (process.command_line, process.command_args,
//     process.command, process.executable.path): the language's standard
//     library on the class path (scala-library, kotlin-stdlib,
//     clojure-1.x), its build tool's fat jar (sbt-assembly's
//     "-assembly.jar", Leiningen's "-standalone.jar"), or Kotlin's
//     "…Kt" main class;
//  3. telemetry.distro.name (an SDK distribution of the language, such as
//     otel4s or clj-otel);
//  4. the instrumentation scopes of its libraries (akka., zio., sttp.,
//     io.ktor., kotlinx., clojure., ring., …).
//
// A service with none of these shows as java; set the resource attribute
// service.language (trace.languages.attribute) to name it.
func jvmLanguage(resource map[string]any, scopes []string) string {
	str := func(k string) string { v, _ := resource[k].(string); return v }
	for _, k := range []string{"process.runtime.description", "process.runtime.name"} {
		if m := languageWord.FindString(strings.ToLower(str(k))); m != "" {
			return m
		}
	}
	var cmd strings.Builder
	for _, k := range []string{"process.command_line", "process.command", "process.executable.path"} {
		cmd.WriteString(str(k))
		cmd.WriteByte(' ')
	}
	if args, ok := resource["process.command_args"].([]any); ok {
		for _, a := range args {
			if s, ok := a.(string); ok {
				cmd.WriteString(s)
				cmd.WriteByte(' ')
			}
		}
	}
	line := cmd.String()
	lower := strings.ToLower(line)
	for _, l := range jvmLanguages {
		for _, s := range l.stdlib {
			if strings.Contains(lower, s) {
				return l.name
			}
		}
		for _, re := range l.jarSuffixes {
			if re.MatchString(lower) {
				return l.name
			}
		}
		if l.mainClass != nil && l.mainClass.MatchString(line) {
			return l.name
		}
	}
	distro := strings.ToLower(str("telemetry.distro.name"))
	for _, l := range jvmLanguages {
		for _, d := range l.distros {
			if distro != "" && strings.Contains(distro, d) {
				return l.name
			}
		}
	}
	for _, l := range jvmLanguages {
		for _, sc := range scopes {
			for _, p := range l.scopes {
				if strings.HasPrefix(sc, p) {
					return l.name
				}
			}
		}
	}
	return ""
}

// guess reads the runtime's name when the SDK does not say its
// language.
func guess(resource map[string]any) string {
	name := func(k string) string { v, _ := resource[k].(string); return strings.ToLower(v) }
	rt := name("process.runtime.name")
	switch {
	case rt == "go" || strings.HasPrefix(rt, "go1"):
		return "go"
	case rt == "cpython" || rt == "pypy":
		return "python"
	case strings.Contains(rt, "java") || strings.Contains(rt, "openjdk"):
		return "java"
	case rt == "nodejs" || rt == "node":
		return "javascript"
	}
	return ""
}
