import { describe, expect, it } from 'vitest';
import { convertUnits, findUnit, UnitError } from './units.js';

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
    expect(() => convertUnits(5, 'km', 'kg')).toThrow('cannot convert kilometers (length) to kilograms (mass): they measure different things');
    expect(() => convertUnits(1, 'liter', 'meter')).toThrow(/volume.*length/);
  });

  it('refuses unknown units, ambiguous spellings and temperatures below absolute zero', () => {
    expect(() => convertUnits(1, 'furlong', 'km')).toThrow(/"furlong" is not a unit I know \(I convert length, mass/);
    expect(() => findUnit('mb')).toThrow(/"mb" is ambiguous: say MB \(megabytes\) or Mb \(megabits\)/);
    expect(() => convertUnits(-300, 'C', 'K')).toThrow(/below absolute zero/);
    expect(() => convertUnits(Number.NaN, 'm', 'km')).toThrow(/finite number/);
  });
});
