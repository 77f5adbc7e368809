// Command-line option parsing for the CLI. Module-private.
//
// The subset of node:util's `parseArgs` the CLI uses, with the same messages:
// long options only (`--name value`, `--name=value`), boolean flags, options
// given more than once, defaults, positionals when allowed, and `--` ending
// the options. node:util itself is not used: importing it starts Deno's Node
// compatibility layer in every agent process.

/** How one option is read. */
export interface OptionSpec {
  readonly type: "string" | "boolean";
  readonly multiple?: boolean;
  readonly default?: string | boolean | readonly string[] | undefined;
}

type ValueOf<S extends OptionSpec> = S["type"] extends "boolean" ? boolean
  : S["multiple"] extends true ? string[]
  : string;

/** The values parsed: options with a default are always present. */
export type Values<O extends Record<string, OptionSpec>> =
  & { [K in keyof O as O[K]["default"] extends undefined ? never : K]: ValueOf<O[K]> }
  & { [K in keyof O as O[K]["default"] extends undefined ? K : never]?: ValueOf<O[K]> };

/**
 * Parses `args` by `options`; throws a `TypeError` naming an unknown option,
 * a missing value, a value given to a flag, or a positional argument where
 * none is allowed.
 */
export function parseArgs<const O extends Record<string, OptionSpec>>(config: {
  args: readonly string[];
  options: O;
  allowPositionals?: boolean;
}): { values: Values<O>; positionals: string[] } {
  const { args, options } = config;
  const values: Record<string, unknown> = {};
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith("--") || arg.length === 2) {
      if (arg.startsWith("-") && arg.length > 1) {
        throw new TypeError(`Unknown option '${arg}'`);
      }
      if (!config.allowPositionals) {
        throw new TypeError(
          `Unexpected argument '${arg}'. This command does not take positional arguments`,
        );
      }
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    const spec = Object.hasOwn(options, name) ? options[name] : undefined;
    if (spec === undefined) throw new TypeError(`Unknown option '--${name}'`);
    let value: string | boolean;
    if (spec.type === "boolean") {
      if (eq >= 0) throw new TypeError(`Option '--${name}' does not take an argument`);
      value = true;
    } else if (eq >= 0) {
      value = arg.slice(eq + 1);
    } else {
      const next = args[i + 1];
      if (next === undefined || next.startsWith("--")) {
        throw new TypeError(`Option '--${name} <value>' argument missing`);
      }
      value = next;
      i++;
    }
    if (spec.multiple) ((values[name] ??= []) as unknown[]).push(value);
    else values[name] = value;
  }
  for (const [name, spec] of Object.entries(options)) {
    if (values[name] === undefined && spec.default !== undefined) {
      values[name] = Array.isArray(spec.default) ? [...spec.default] : spec.default;
    }
  }
  return { values: values as Values<O>, positionals };
}
