/** A conversion that cannot be done; the message says why. */
export class UnitError extends Error {
  override name = 'UnitError';
}

/** A kind of quantity; only units of the same kind convert into each other. */
export type Quantity = 'length' | 'mass' | 'temperature' | 'volume' | 'area' | 'speed' | 'time' | 'data size' | 'energy' | 'pressure';

/** One unit: its name, the words it goes by, and how it maps to its quantity's base unit. */
interface Unit {
  name: string;
  quantity: Quantity;
  /** Base units per one of this unit (a temperature adds `offset` too: base = value × factor + offset). */
  factor: number;
  offset?: number;
  aliases: string[];
}

const u = (quantity: Quantity, name: string, factor: number, aliases: string[], offset?: number): Unit => ({
  name,
  quantity,
  factor,
  aliases: [name, unitLabel(name, 2), ...aliases],
  ...(offset === undefined ? {} : { offset }),
});

/** Plurals that do not add an s ("12 stone" is how a person's weight is said). */
const IRREGULAR: Readonly<Record<string, string>> = { foot: 'feet', inch: 'inches', psi: 'psi', stone: 'stone' };

/** A unit's name for an amount: "1 mile", "3 miles per hour", "2 degrees Celsius", "10 square feet". */
export function unitLabel(name: string, amount: number): string {
  if (Math.abs(amount) === 1) return name;
  if (name.startsWith('degree ')) return name.replace('degree', 'degrees');
  // The counted word takes the plural: "meters per second", "millimeters of mercury".
  const split = name.search(/ (per|of) /);
  const head = split < 0 ? name : name.slice(0, split);
  const tail = split < 0 ? '' : name.slice(split);
  const words = head.split(' ');
  const last = words.pop()!;
  return [...words, IRREGULAR[last] ?? `${last}s`].join(' ') + tail;
}

/** Exact definitions (international yard and pound, US customary volumes) wherever there is one. */
const UNITS: readonly Unit[] = [
  // length, base metre
  u('length', 'meter', 1, ['m', 'metre', 'metres']),
  u('length', 'kilometer', 1000, ['km', 'kilometre', 'kilometres']),
  u('length', 'centimeter', 0.01, ['cm', 'centimetre', 'centimetres']),
  u('length', 'millimeter', 0.001, ['mm', 'millimetre', 'millimetres']),
  u('length', 'micrometer', 1e-6, ['µm', 'um', 'micron', 'microns']),
  u('length', 'nanometer', 1e-9, ['nm']),
  u('length', 'mile', 1609.344, ['mi']),
  u('length', 'yard', 0.9144, ['yd', 'yds']),
  u('length', 'foot', 0.3048, ['ft', 'feet']),
  u('length', 'inch', 0.0254, ['in', 'inches', '"']),
  u('length', 'nautical mile', 1852, ['nmi']),
  u('length', 'light-year', 9_460_730_472_580_800, ['ly', 'light year', 'light years']),
  // mass, base kilogram
  u('mass', 'kilogram', 1, ['kg', 'kilo', 'kilos']),
  u('mass', 'gram', 0.001, ['g', 'gramme', 'grammes']),
  u('mass', 'milligram', 1e-6, ['mg']),
  u('mass', 'microgram', 1e-9, ['µg', 'ug', 'mcg']),
  u('mass', 'tonne', 1000, ['t', 'metric ton', 'metric tons']),
  u('mass', 'pound', 0.45359237, ['lb', 'lbs']),
  u('mass', 'ounce', 0.028349523125, ['oz']),
  u('mass', 'stone', 6.35029318, ['st']),
  u('mass', 'short ton', 907.18474, ['us ton', 'us tons', 'ton', 'tons']),
  u('mass', 'long ton', 1016.0469088, ['imperial ton', 'imperial tons']),
  // temperature, base kelvin
  u('temperature', 'kelvin', 1, ['K'], 0),
  u('temperature', 'degree Celsius', 1, ['C', '°C', 'celsius', 'degrees celsius', 'centigrade'], 273.15),
  u('temperature', 'degree Fahrenheit', 5 / 9, ['F', '°F', 'fahrenheit', 'degrees fahrenheit'], 273.15 - (32 * 5) / 9),
  // volume, base litre
  u('volume', 'liter', 1, ['l', 'L', 'litre', 'litres']),
  u('volume', 'milliliter', 0.001, ['ml', 'mL', 'millilitre', 'millilitres']),
  u('volume', 'centiliter', 0.01, ['cl', 'cL', 'centilitre', 'centilitres']),
  u('volume', 'deciliter', 0.1, ['dl', 'dL', 'decilitre', 'decilitres']),
  u('volume', 'cubic meter', 1000, ['m3', 'm^3', 'cubic metre', 'cubic metres']),
  u('volume', 'cubic centimeter', 0.001, ['cm3', 'cm^3', 'cc', 'cubic centimetre', 'cubic centimetres']),
  u('volume', 'gallon', 3.785411784, ['gal', 'us gallon', 'us gallons']),
  u('volume', 'imperial gallon', 4.54609, ['uk gallon', 'uk gallons']),
  u('volume', 'quart', 0.946352946, ['qt']),
  u('volume', 'pint', 0.473176473, ['pt']),
  u('volume', 'cup', 0.2365882365, []),
  u('volume', 'fluid ounce', 0.0295735295625, ['fl oz', 'floz']),
  u('volume', 'tablespoon', 0.01478676478125, ['tbsp']),
  u('volume', 'teaspoon', 0.00492892159375, ['tsp']),
  // area, base square metre
  u('area', 'square meter', 1, ['m2', 'm^2', 'sq m', 'square metre', 'square metres']),
  u('area', 'square kilometer', 1e6, ['km2', 'km^2', 'sq km', 'square kilometre', 'square kilometres']),
  u('area', 'square centimeter', 1e-4, ['cm2', 'cm^2', 'sq cm']),
  u('area', 'square mile', 2_589_988.110336, ['mi2', 'mi^2', 'sq mi']),
  u('area', 'square foot', 0.09290304, ['ft2', 'ft^2', 'sq ft', 'square feet']),
  u('area', 'square inch', 0.00064516, ['in2', 'in^2', 'sq in', 'square inches']),
  u('area', 'hectare', 10_000, ['ha']),
  u('area', 'acre', 4046.8564224, ['ac']),
  // speed, base metre per second
  u('speed', 'meter per second', 1, ['m/s', 'meters per second', 'metres per second', 'mps']),
  u('speed', 'kilometer per hour', 1 / 3.6, ['km/h', 'kmh', 'kph', 'kilometers per hour', 'kilometres per hour']),
  u('speed', 'mile per hour', 0.44704, ['mph', 'mi/h', 'miles per hour']),
  u('speed', 'knot', 1852 / 3600, ['kn', 'kt', 'kts']),
  u('speed', 'foot per second', 0.3048, ['ft/s', 'fps', 'feet per second']),
  // time, base second
  u('time', 'second', 1, ['s', 'sec', 'secs']),
  u('time', 'millisecond', 0.001, ['ms']),
  u('time', 'minute', 60, ['min', 'mins']),
  u('time', 'hour', 3600, ['h', 'hr', 'hrs']),
  u('time', 'day', 86_400, ['d']),
  u('time', 'week', 604_800, ['wk']),
  u('time', 'year', 31_557_600, ['yr', 'yrs', 'julian year']),
  // data size, base byte (case matters: MB is megabytes, Mb megabits)
  u('data size', 'bit', 1 / 8, ['b']),
  u('data size', 'byte', 1, ['B']),
  u('data size', 'kilobyte', 1e3, ['kB', 'KB']),
  u('data size', 'megabyte', 1e6, ['MB']),
  u('data size', 'gigabyte', 1e9, ['GB']),
  u('data size', 'terabyte', 1e12, ['TB']),
  u('data size', 'petabyte', 1e15, ['PB']),
  u('data size', 'kibibyte', 1024, ['KiB']),
  u('data size', 'mebibyte', 1024 ** 2, ['MiB']),
  u('data size', 'gibibyte', 1024 ** 3, ['GiB']),
  u('data size', 'tebibyte', 1024 ** 4, ['TiB']),
  u('data size', 'kilobit', 1e3 / 8, ['kb', 'kbit']),
  u('data size', 'megabit', 1e6 / 8, ['Mb', 'Mbit']),
  u('data size', 'gigabit', 1e9 / 8, ['Gb', 'Gbit']),
  // energy, base joule
  u('energy', 'joule', 1, ['J']),
  u('energy', 'kilojoule', 1000, ['kJ']),
  u('energy', 'calorie', 4.184, ['cal']),
  u('energy', 'kilocalorie', 4184, ['kcal', 'Cal']),
  u('energy', 'watt-hour', 3600, ['Wh', 'watt hour', 'watt hours']),
  u('energy', 'kilowatt-hour', 3.6e6, ['kWh', 'kilowatt hour', 'kilowatt hours']),
  // pressure, base pascal
  u('pressure', 'pascal', 1, ['Pa']),
  u('pressure', 'kilopascal', 1000, ['kPa']),
  u('pressure', 'bar', 100_000, []),
  u('pressure', 'atmosphere', 101_325, ['atm']),
  u('pressure', 'psi', 6894.757293168361, ['pound per square inch', 'pounds per square inch']),
  u('pressure', 'millimeter of mercury', 133.322387415, ['mmHg']),
];

/** The name of every unit, in the order of the table. */
export const UNIT_NAMES: readonly string[] = UNITS.map((unit) => unit.name);

/** The quantities and a few of their units, for the tool's description and error messages. */
export const UNIT_SUMMARY = [...new Set(UNITS.map((unit) => unit.quantity))].join(', ');

const EXACT = new Map<string, Unit>();
/** Lower-case spellings; null where two units share one (mb: megabyte or megabit?). */
const FOLDED = new Map<string, Unit | null>();
for (const unit of UNITS) {
  for (const alias of unit.aliases) {
    EXACT.set(alias, unit);
    const folded = alias.toLowerCase();
    const existing = FOLDED.get(folded);
    FOLDED.set(folded, existing === undefined || existing === unit ? unit : null);
  }
}

/** Finds a unit by any of its spellings: exact case first (MB, Mb), then any case when that is unambiguous. */
export function findUnit(text: string): Unit {
  const cleaned = text
    .trim()
    .replace(/\s+/g, ' ')
    .replace(/²/g, '2')
    .replace(/³/g, '3')
    .replace(/^degrees? (?=[cf]\b)/i, '°')
    .replace(/\.$/, '');
  const unit = EXACT.get(cleaned) ?? FOLDED.get(cleaned.toLowerCase());
  if (unit) return unit;
  if (unit === null) {
    const candidates = UNITS.filter((candidate) => candidate.aliases.some((alias) => alias.toLowerCase() === cleaned.toLowerCase()));
    throw new UnitError(
      `"${text}" is ambiguous: say ${candidates.map((candidate) => `${candidate.aliases[2] ?? candidate.name} (${unitLabel(candidate.name, 2)})`).join(' or ')}`,
    );
  }
  throw new UnitError(`"${text}" is not a unit I know (I convert ${UNIT_SUMMARY})`);
}

/** The result of a conversion, with the units' full names. */
export interface Conversion {
  value: number;
  quantity: Quantity;
  from: string;
  to: string;
}

/** Converts `value` from one unit to another of the same quantity. */
export function convertUnits(value: number, from: string, to: string): Conversion {
  if (!Number.isFinite(value)) throw new UnitError('the value must be a finite number');
  const source = findUnit(from);
  const target = findUnit(to);
  const sources = unitLabel(source.name, 2);
  const targets = unitLabel(target.name, 2);
  if (source.quantity !== target.quantity) {
    throw new UnitError(`cannot convert ${sources} (${source.quantity}) to ${targets} (${target.quantity}): they measure different things`);
  }
  const base = value * source.factor + (source.offset ?? 0);
  if (source.quantity === 'temperature' && base < 0)
    throw new UnitError(`${value} ${unitLabel(source.name, value)} is below absolute zero`);
  // Without offsets, one ratio: 1e308 light-years in light-years must not pass through 9.5e323 meters.
  const converted =
    source.offset === undefined && target.offset === undefined
      ? value * (source.factor / target.factor)
      : (base - (target.offset ?? 0)) / target.factor;
  if (!Number.isFinite(converted))
    throw new UnitError(`${value} ${unitLabel(source.name, value)} in ${targets} is too large for a number to hold (over 1.8e308)`);
  if (converted === 0 && value !== 0 && source.quantity !== 'temperature') {
    throw new UnitError(
      `${value} ${unitLabel(source.name, value)} in ${targets} is too small for a number to hold (under 5e-324), though not 0`,
    );
  }
  return { value: converted, quantity: source.quantity, from: source.name, to: target.name };
}
