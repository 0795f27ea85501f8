// Package settings fills a struct of yaml-tagged fields from layers:
// its current values (the defaults), a YAML file, TRIAD_* environment
// variables and key=value settings, by dotted key (postgres.port is
// TRIAD_POSTGRES_PORT). It knows nothing of triad's own configuration, so
// any package may use it: config composes triad's whole configuration
// with it, and stacktest reads only the stores' settings.
//
// A field tagged secret:"true" is never accepted from a file's values
// (Secrets lists those set) nor as a key=value setting.
package settings

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvName maps a dotted key to its environment variable.
func EnvName(key string) string {
	return "TRIAD_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Walk visits every settable leaf field of the struct dst points at, with
// its dotted key (durations are leaves; inline structs add no key part).
func Walk(dst any, fn func(key string, f reflect.Value, sf reflect.StructField) error) error {
	return walk(reflect.ValueOf(dst).Elem(), "", fn)
}

func walk(v reflect.Value, prefix string, fn func(key string, f reflect.Value, sf reflect.StructField) error) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		fv := v.Field(i)
		if opts == "inline" {
			if err := walk(fv, prefix, fn); err != nil {
				return err
			}
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeOf(time.Duration(0)) {
			if err := walk(fv, key, fn); err != nil {
				return err
			}
			continue
		}
		if err := fn(key, fv, sf); err != nil {
			return err
		}
	}
	return nil
}

// Secrets lists the keys of secret fields that hold a value (after a
// file was decoded: those it set, which it must not).
func Secrets(dst any) []string {
	var keys []string
	_ = Walk(dst, func(key string, f reflect.Value, sf reflect.StructField) error {
		if sf.Tag.Get("secret") == "true" && !f.IsZero() {
			keys = append(keys, key)
		}
		return nil
	})
	return keys
}

// ApplyEnv sets every field whose environment variable env holds. An
// error names the variable and its key, never the value (it may be a
// secret).
func ApplyEnv(dst any, env map[string]string) error {
	return Walk(dst, func(key string, f reflect.Value, _ reflect.StructField) error {
		name := EnvName(key)
		raw, ok := env[name]
		if !ok {
			return nil
		}
		if err := setValue(f, raw); err != nil {
			return fmt.Errorf("%s (%s): %w", name, key, err)
		}
		return nil
	})
}

// EnvMap turns KEY=VALUE pairs (os.Environ()) into a map.
func EnvMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// Set sets the field at the dotted key from its text form. Secrets are
// refused (flags show in process lists).
func Set(dst any, key, raw string) error {
	found := false
	err := Walk(dst, func(k string, f reflect.Value, sf reflect.StructField) error {
		if k != key {
			return nil
		}
		found = true
		if sf.Tag.Get("secret") == "true" {
			return fmt.Errorf("secrets are not accepted as flags (they show in process lists); use %s or the *_file key", EnvName(key))
		}
		return setValue(f, raw)
	})
	if err != nil {
		return err
	}
	if !found {
		return errors.New("unknown key")
	}
	return nil
}

func setValue(f reflect.Value, raw string) error {
	if f.Type() == reflect.TypeOf(time.Duration(0)) {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("invalid duration (want e.g. 5s, 1m)")
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(raw)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil {
			return fmt.Errorf("invalid integer")
		}
		f.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("invalid boolean (want true or false)")
		}
		f.SetBool(b)
	case reflect.Float64:
		x, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		if err != nil {
			return fmt.Errorf("invalid number")
		}
		f.SetFloat(x)
	case reflect.Slice:
		if f.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported list type %s", f.Type())
		}
		var items []string
		for _, p := range strings.Split(raw, ",") {
			if p = strings.TrimSpace(p); p != "" {
				items = append(items, p)
			}
		}
		f.Set(reflect.ValueOf(items))
	case reflect.Map:
		if f.Type().Key().Kind() != reflect.String || f.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported map type %s", f.Type())
		}
		m := map[string]string{}
		for _, p := range strings.Split(raw, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			k, v, ok := strings.Cut(p, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return fmt.Errorf("invalid pair %q (want key=value,key=value)", p)
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		f.Set(reflect.ValueOf(m))
	default:
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}

// DecodeYAML decodes the YAML document b into dst. Strict: a key dst has
// no field for is an error, not a silent default. A type error names the
// dotted key of each line it concerns.
func DecodeYAML(b []byte, dst any, strict bool) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(strict)
	err := dec.Decode(dst)
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	// yaml.v3 names lines, not keys: add the dotted key of each line.
	var root yaml.Node
	if yaml.Unmarshal(b, &root) != nil {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		var line int
		if _, serr := fmt.Sscanf(m, "line %d:", &line); serr == nil {
			if key := keyAtLine(&root, "", line); key != "" {
				m = key + ": " + m
			}
		}
		msgs[i] = m
	}
	return errors.New(strings.Join(msgs, "; "))
}

// keyAtLine returns the dotted key whose value starts on line.
func keyAtLine(n *yaml.Node, prefix string, line int) string {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if k := keyAtLine(c, prefix, line); k != "" {
				return k
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if prefix != "" {
				key = prefix + "." + key
			}
			if n.Content[i].Line == line || n.Content[i+1].Line == line && n.Content[i+1].Kind == yaml.ScalarNode {
				return key
			}
			if k := keyAtLine(n.Content[i+1], key, line); k != "" {
				return k
			}
		}
	}
	return ""
}
