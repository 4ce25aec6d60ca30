-- Only leased leads (in the hopper or dialling) have a lease; every query on the lease
-- compares `lease_until`, which implies it is not NULL. Indexing only those rows keeps a
-- lead's insert (an import writes a million) from updating this index at all.
DROP INDEX leads_lease;
CREATE INDEX leads_lease ON leads (lease_until) WHERE lease_until IS NOT NULL;
