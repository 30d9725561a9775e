// Example Cost Management budget on the AI app's resource group (deploy into that resource group); its
// notifications go to the action group that delivers budget alerts to the downshift healer.
param name string = 'healer-budget'
@minValue(1)
param amount int
@description('First day of the first budget month, YYYY-MM-01.')
param startDate string
param actionGroupId string
param contactEmails array = []
@description('Actual spend (% of budget) at which the downshift healer is told.')
param actualThresholdPercent int = 80
@description('Forecast (% of budget) at which the downshift healer is told.')
param forecastThresholdPercent int = 100

resource budget 'Microsoft.Consumption/budgets@2023-05-01' = {
  name: name
  properties: {
    category: 'Cost'
    amount: amount
    timeGrain: 'Monthly'
    timePeriod: {
      startDate: startDate
    }
    notifications: {
      actualOverThreshold: {
        enabled: true
        operator: 'GreaterThanOrEqualTo'
        threshold: actualThresholdPercent
        thresholdType: 'Actual'
        contactEmails: contactEmails
        contactGroups: [
          actionGroupId
        ]
      }
      forecastOverThreshold: {
        enabled: true
        operator: 'GreaterThanOrEqualTo'
        threshold: forecastThresholdPercent
        thresholdType: 'Forecasted'
        contactEmails: contactEmails
        contactGroups: [
          actionGroupId
        ]
      }
    }
  }
}

output id string = budget.id
