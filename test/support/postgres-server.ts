// The tests' PostgreSQL is the same throwaway cluster the bench starts: scripts/local-postgres.mjs.
export {
  findPostgresBin,
  startLocalPostgres as startTestPostgres,
  type LocalPostgres as TestPostgres,
} from '../../scripts/local-postgres.mjs';
