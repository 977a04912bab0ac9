import { describe, expect, it } from 'vitest';
import { convertUnits, findUnit, UNIT_NAMES, UnitError, unitLabel } from './units.js';

describe('unit conversion', () => {
  it.each([
    [5, 'km', 'miles', 3.106855961],
    [1, 'mile', 'ft', 5280],
    [12, 'in', 'cm', 30.48],
    [100, '°C', '°F', 212],
    [32, 'fahrenheit', 'celsius', 0],
    [0, 'K', 'C', -273.15],
    [-40, 'F', 'C', -40],
    [300, 'kelvin', 'F', 80.33],
    [1, 'lb', 'g', 453.59237],
    [1, 'stone', 'kg', 6.35029318],
    [1, 'gallon', 'L', 3.785411784],
    [1, 'imperial gallon', 'liters', 4.54609],
    [2, 'cups', 'ml', 473.176473],
    [60, 'mph', 'km/h', 96.56064],
    [10, 'knots', 'm/s', 5.144444444],
    [1, 'GiB', 'B', 1073741824],
    [1, 'MB', 'Mb', 8],
    [1, 'TB', 'GiB', 931.3225746],
    [1, 'hectare', 'acres', 2.471053815],
    [90, 'min', 'h', 1.5],
    [1, 'kWh', 'kJ', 3600],
    [1, 'atm', 'psi', 14.69594878],
    [3, 'KM', 'Meters', 3000],
    [1, 'sq ft', 'm²', 0.09290304],
  ])('converts %d %s to %s', (value, from, to, expected) => {
    expect(convertUnits(value, from, to).value).toBeCloseTo(expected, 6);
  });

  it('names the quantity and the units it converted', () => {
    expect(convertUnits(5, 'km', 'mi')).toMatchObject({ quantity: 'length', from: 'kilometer', to: 'mile' });
  });

  it('refuses units of different quantities, naming both', () => {
    expect(() => convertUnits(5, 'km', 'kg')).toThrow(UnitError);
    expect(() => convertUnits(5, 'km', 'kg')).toThrow(
      'cannot convert kilometers (length) to kilograms (mass): they measure different things',
    );
    expect(() => convertUnits(1, 'liter', 'meter')).toThrow(/volume.*length/);
  });

  it('refuses unknown units, ambiguous spellings and temperatures below absolute zero', () => {
    expect(() => convertUnits(1, 'furlong', 'km')).toThrow(/"furlong" is not a unit I know \(I convert length, mass/);
    expect(() => findUnit('mb')).toThrow(/"mb" is ambiguous: say MB \(megabytes\) or Mb \(megabits\)/);
    expect(() => convertUnits(-300, 'C', 'K')).toThrow(/below absolute zero/);
    expect(() => convertUnits(Number.NaN, 'm', 'km')).toThrow(/finite number/);
  });

  it('spells every unit right, one and many', () => {
    expect(UNIT_NAMES.map((name) => [unitLabel(name, 1), unitLabel(name, 2)])).toEqual([
      ['meter', 'meters'],
      ['kilometer', 'kilometers'],
      ['centimeter', 'centimeters'],
      ['millimeter', 'millimeters'],
      ['micrometer', 'micrometers'],
      ['nanometer', 'nanometers'],
      ['mile', 'miles'],
      ['yard', 'yards'],
      ['foot', 'feet'],
      ['inch', 'inches'],
      ['nautical mile', 'nautical miles'],
      ['light-year', 'light-years'],
      ['kilogram', 'kilograms'],
      ['gram', 'grams'],
      ['milligram', 'milligrams'],
      ['microgram', 'micrograms'],
      ['tonne', 'tonnes'],
      ['pound', 'pounds'],
      ['ounce', 'ounces'],
      ['stone', 'stone'],
      ['short ton', 'short tons'],
      ['long ton', 'long tons'],
      ['kelvin', 'kelvins'],
      ['degree Celsius', 'degrees Celsius'],
      ['degree Fahrenheit', 'degrees Fahrenheit'],
      ['liter', 'liters'],
      ['milliliter', 'milliliters'],
      ['centiliter', 'centiliters'],
      ['deciliter', 'deciliters'],
      ['cubic meter', 'cubic meters'],
      ['cubic centimeter', 'cubic centimeters'],
      ['gallon', 'gallons'],
      ['imperial gallon', 'imperial gallons'],
      ['quart', 'quarts'],
      ['pint', 'pints'],
      ['cup', 'cups'],
      ['fluid ounce', 'fluid ounces'],
      ['tablespoon', 'tablespoons'],
      ['teaspoon', 'teaspoons'],
      ['square meter', 'square meters'],
      ['square kilometer', 'square kilometers'],
      ['square centimeter', 'square centimeters'],
      ['square mile', 'square miles'],
      ['square foot', 'square feet'],
      ['square inch', 'square inches'],
      ['hectare', 'hectares'],
      ['acre', 'acres'],
      ['meter per second', 'meters per second'],
      ['kilometer per hour', 'kilometers per hour'],
      ['mile per hour', 'miles per hour'],
      ['knot', 'knots'],
      ['foot per second', 'feet per second'],
      ['second', 'seconds'],
      ['millisecond', 'milliseconds'],
      ['minute', 'minutes'],
      ['hour', 'hours'],
      ['day', 'days'],
      ['week', 'weeks'],
      ['year', 'years'],
      ['bit', 'bits'],
      ['byte', 'bytes'],
      ['kilobyte', 'kilobytes'],
      ['megabyte', 'megabytes'],
      ['gigabyte', 'gigabytes'],
      ['terabyte', 'terabytes'],
      ['petabyte', 'petabytes'],
      ['kibibyte', 'kibibytes'],
      ['mebibyte', 'mebibytes'],
      ['gibibyte', 'gibibytes'],
      ['tebibyte', 'tebibytes'],
      ['kilobit', 'kilobits'],
      ['megabit', 'megabits'],
      ['gigabit', 'gigabits'],
      ['joule', 'joules'],
      ['kilojoule', 'kilojoules'],
      ['calorie', 'calories'],
      ['kilocalorie', 'kilocalories'],
      ['watt-hour', 'watt-hours'],
      ['kilowatt-hour', 'kilowatt-hours'],
      ['pascal', 'pascals'],
      ['kilopascal', 'kilopascals'],
      ['bar', 'bars'],
      ['atmosphere', 'atmospheres'],
      ['psi', 'psi'],
      ['millimeter of mercury', 'millimeters of mercury'],
    ]);
    expect(unitLabel('degree Celsius', -1)).toBe('degree Celsius');
    expect(unitLabel('degree Celsius', 0.5)).toBe('degrees Celsius');
    // Every plural is a spelling the tool reads back.
    for (const name of UNIT_NAMES) expect(findUnit(unitLabel(name, 2)).name).toBe(name);
  });

  it('never answers Infinity or a nonzero amount rounded to 0', () => {
    expect(() => convertUnits(1e308, 'ly', 'nm')).toThrow(
      '1e+308 light-years in nanometers is too large for a number to hold (over 1.8e308)',
    );
    expect(() => convertUnits(1e300, 'TB', 'bit')).toThrow(/too large/);
    expect(() => convertUnits(-1e308, 'mi', 'in')).toThrow(/too large/);
    expect(() => convertUnits(5e-324, 'nm', 'ly')).toThrow(/too small for a number to hold/);
    expect(() => convertUnits(1e307, 'km', 'm')).toThrow(/too large/);
    expect(() => convertUnits(1.7e308, 'K', 'F')).toThrow(/too large/);
    // Where only the way there would overflow, the answer is still right.
    expect(convertUnits(1e308, 'ly', 'ly').value).toBe(1e308);
    expect(convertUnits(1.7e308, 'F', 'K').value).toBeCloseTo(1.7e308 * (5 / 9), -300);
    expect(convertUnits(0, 'nm', 'ly').value).toBe(0);
    expect(convertUnits(32, 'F', 'C').value).toBeCloseTo(0, 10);
  });
});
