// Reading a synthesised cloud assembly (cdk.out): its stacks' templates, and CloudFormation's
// intrinsic functions evaluated as far as a template's parameters, mappings and conditions say.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Template = {
  Parameters?: Record<string, { Default?: Json }>;
  Mappings?: Record<string, Record<string, Record<string, Json>>>;
  Conditions?: Record<string, Json>;
  Resources: Record<string, Resource>;
};
export type Resource = {
  Type: string;
  Properties?: Record<string, Json>;
  Metadata?: Record<string, Json>;
  DeletionPolicy?: string;
};

/** Something only known once deployed (a parent stack's resource, an attribute): kept by name. */
export class Unknown {
  constructor(readonly what: string) {}
  toString(): string {
    return `<${this.what}>`;
  }
}
export type Value = Json | Unknown | Value[] | { [key: string]: Value };

export function readAssembly(directory: string): { stacks: Record<string, Template>; read(file: string): Template } {
  const read = (file: string): Template => JSON.parse(readFileSync(join(directory, file), 'utf8'));
  const manifest = JSON.parse(readFileSync(join(directory, 'manifest.json'), 'utf8'));
  const stacks: Record<string, Template> = {};
  for (const [name, artifact] of Object.entries<any>(manifest.artifacts ?? {})) {
    if (artifact.type === 'aws:cloudformation:stack') {
      stacks[name] = read(artifact.properties.templateFile);
    }
  }
  return { stacks, read };
}

/** Evaluates Ref, Fn::If, Fn::Equals, Fn::Not, Fn::And, Fn::Or, Fn::FindInMap, Fn::Join and Condition
 * against `parameters` (else each parameter's Default); anything else becomes an Unknown. */
export class Resolver {
  constructor(
    private readonly template: Template,
    private readonly parameters: Record<string, Value> = {},
  ) {}

  resolve(value: Value): Value {
    if (value instanceof Unknown || value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map((item) => this.resolve(item));
    const keys = Object.keys(value);
    if (keys.length === 1 && (keys[0] === 'Ref' || keys[0].startsWith('Fn::') || keys[0] === 'Condition')) {
      return this.apply(keys[0], (value as Record<string, Value>)[keys[0]]);
    }
    return Object.fromEntries(keys.map((key) => [key, this.resolve((value as Record<string, Value>)[key])]));
  }

  condition(name: string): boolean {
    const expression = this.template.Conditions?.[name];
    if (expression === undefined) throw new Error(`no condition ${name}`);
    const result = this.resolve(expression);
    if (typeof result !== 'boolean') throw new Error(`condition ${name} is not known before deploying: ${result}`);
    return result;
  }

  private apply(name: string, argument: Value): Value {
    const args = (): Value[] => argument as Value[];
    switch (name) {
      case 'Ref': {
        const target = String(argument);
        if (target in this.parameters) return this.parameters[target];
        const parameter = this.template.Parameters?.[target];
        if (parameter?.Default !== undefined) return parameter.Default;
        return new Unknown(`Ref ${target}`);
      }
      case 'Condition':
        return this.condition(String(argument));
      case 'Fn::If':
        return this.condition(String(args()[0])) ? this.resolve(args()[1]) : this.resolve(args()[2]);
      case 'Fn::Equals': {
        const [left, right] = args().map((item) => this.resolve(item));
        if (left instanceof Unknown || right instanceof Unknown) return new Unknown('Fn::Equals');
        return JSON.stringify(left) === JSON.stringify(right);
      }
      case 'Fn::Not':
        return !this.truth(args()[0]);
      case 'Fn::And':
        return args().every((item) => this.truth(item));
      case 'Fn::Or':
        return args().some((item) => this.truth(item));
      case 'Fn::FindInMap': {
        const [map, key, attribute] = args().map((item) => String(this.resolve(item)));
        const found = this.template.Mappings?.[map]?.[key]?.[attribute];
        if (found === undefined) throw new Error(`no mapping ${map}.${key}.${attribute}`);
        return found;
      }
      case 'Fn::Join': {
        const [separator, items] = args();
        const parts = this.resolve(items) as Value[];
        if (parts.some((part) => part instanceof Unknown)) return new Unknown('Fn::Join');
        return parts.join(String(separator));
      }
      default:
        return new Unknown(`${name} ${JSON.stringify(argument)}`);
    }
  }

  private truth(value: Value): boolean {
    const result = this.resolve(value);
    if (typeof result !== 'boolean') throw new Error(`not a condition: ${JSON.stringify(value)}`);
    return result;
  }
}

/** The strings of an event pattern's field (EventBridge's exact-match values). */
export function strings(field: Value | undefined, where: string): string[] {
  if (!Array.isArray(field)) throw new Error(`${where}: expected a list of values, got ${String(field)}`);
  return field.map((item) => {
    if (typeof item !== 'string') throw new Error(`${where}: ${String(item)} is not known before deploying`);
    return item;
  });
}
