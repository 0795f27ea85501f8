package trace

import (
	"strings"
)

// Languages names the language of each span's service, first match wins:
//
//  1. Services: a configured service → language mapping;
//  2. Attribute: a configured resource attribute (e.g. "service.language");
//  3. telemetry.sdk.language, the SDK's own word; a JVM SDK says "java"
//     for Scala and Kotlin services too, so for "java" the heuristics
//     below may name the JVM language;
//  4. heuristics over the resource (process command line, executable,
//     runtime name, SDK name) and the scope name.
//
// The result is lowercase; "" when nothing tells.
type Languages struct {
	Services  map[string]string `yaml:"services"`
	Attribute string            `yaml:"attribute"`
}

// Language names the language of a span of service with this resource
// and instrumentation scope, and how it was decided: "config",
// "attribute", "sdk", "heuristic" or "".
func (l Languages) Language(service string, resource map[string]any, scope string) (lang, how string) {
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
		if jvm := jvmLanguage(resource, scope); jvm != "" {
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

// jvmLanguage recognises Scala and Kotlin services on the Java SDK: their
// standard library on the command line or class path, or a scope named
// after a Scala package ("scala.", "akka.", "org.apache.pekko.",
// "zio.", "cats.").
func jvmLanguage(resource map[string]any, scope string) string {
	var text strings.Builder
	for _, k := range []string{"process.command_line", "process.command", "process.executable.path", "process.runtime.description", "process.runtime.name"} {
		if v, ok := resource[k].(string); ok {
			text.WriteString(strings.ToLower(v))
			text.WriteByte(' ')
		}
	}
	if args, ok := resource["process.command_args"].([]any); ok {
		for _, a := range args {
			if s, ok := a.(string); ok {
				text.WriteString(strings.ToLower(s))
				text.WriteByte(' ')
			}
		}
	}
	t := text.String()
	switch {
	case strings.Contains(t, "scala-library") || strings.Contains(t, "scala3-library") || strings.Contains(t, "/scala/"):
		return "scala"
	case strings.Contains(t, "kotlin-stdlib"):
		return "kotlin"
	}
	for _, p := range []string{"scala.", "akka.", "org.apache.pekko.", "zio.", "cats.", "sttp."} {
		if strings.HasPrefix(scope, p) {
			return "scala"
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
